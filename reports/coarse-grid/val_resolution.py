"""Choose coarse-grid's default resolution on val views: python val_resolution.py SCENE CHECKPOINT SCALE BASE RES,...

For each resolution, the mean val-view PSNR of BASE+coarse-grid:RES against BASE (the scene's sample budget,
e.g. samples or samples:32:coarse=32), both rendered here; the test views are left for the reports.
"""
import sys


from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.metrics import psnr
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene

scene_spec, ckpt, scale, base = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
resolutions = [int(r) for r in sys.argv[5].split(",")]
scene = load_scene(scene_spec)
scene = scene.rescaled(scale) if scale != 1.0 else scene
pair = load_checkpoint(ckpt).eval()
calibration = calibration_batch(scene, 4096)  # as nerf-eval report's default
views = list(scene.subset("val"))
settings = RenderSettings(white_bkgd=scene.white_bkgd)
print(f"{scene_spec} val views {views}, {settings.n_coarse}+{settings.n_fine} samples asked, on {machine_summary()}",
      flush=True)


def val_psnr(model):
    return [psnr(render_chunked(model, scene.rays(v), settings)["rgb"], scene.target(v).reshape(-1, 3)) for v in views]


ref = val_psnr(get_compressor(base).compress(pair, calibration))
print(f"  {base:<40} mean {sum(ref) / len(ref):.3f} dB  views {[round(p, 3) for p in ref]}", flush=True)
for res in resolutions:
    name = f"{base}+coarse-grid:{res}"
    got = val_psnr(get_compressor(name).compress(pair, calibration))
    deltas = [g - r for g, r in zip(got, ref)]
    print(f"  {name:<40} mean {sum(got) / len(got):.3f} dB  delta {sum(deltas) / len(deltas):+.3f}  "
          f"worst view {min(deltas):+.3f}  views {[round(p, 3) for p in got]}", flush=True)
