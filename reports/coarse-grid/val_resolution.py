"""Choose coarse-grid's default resolution on val views: python val_resolution.py SCENE CHECKPOINT SCALE BASE RES,...

For each resolution, the mean val-view PSNR of BASE+coarse-grid:RES against BASE (the scene's sample budget,
e.g. samples or samples:32:coarse=32), both rendered here; the test views are left for the reports.
"""
import sys

from nerf_eval.compress import get_compressor
from nerf_eval.metrics import psnr
from nerf_eval.render import render_chunked
from val_setup import val_setup

scene_spec, ckpt, scale, base = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
resolutions = [int(r) for r in sys.argv[5].split(",")]
scene, pair, calibration, views, settings = val_setup(scene_spec, ckpt, scale)


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
