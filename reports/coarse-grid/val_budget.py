"""Choose a scene's sample budget for samples+occupancy+coarse-grid on val views, by both quality targets.

python val_budget.py SCENE CHECKPOINT SCALE

Renders the val views with fp32 and with `samples:F[:coarse=C]+occupancy+coarse-grid` at every budget the
`samples` compressor declares for autocompress (64/48/32 fine x the settings' or 32 coarse), and prints the
mean PSNR and SSIM drop against fp32 (both rendered here, against the ground truth) and the worst view's
PSNR drop. With the table the coarse pass costs little, so the cost of a budget is the points the fine
network evaluates per ray (C + F); the chosen budget is the cheapest within the `samples` compressor's own
gates (`SAMPLES_GATES`: mean PSNR drop 0.1 dB, worst view 0.2 dB, SSIM 0.002; #21's accelerator targets).
The test views are left for the reports.
"""
import itertools
import sys

from nerf_eval.compress import get_compressor
from nerf_eval.compress.samples import SAMPLES_GATES, SEARCH_COARSE, SEARCH_FINE
from nerf_eval.metrics import psnr, ssim
from nerf_eval.render import render_chunked
from val_setup import val_setup

scene_spec, ckpt, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
limits = SAMPLES_GATES["psnr_drop"], SAMPLES_GATES["worst_psnr_drop"], SAMPLES_GATES["ssim_drop"]
scene, pair, calibration, views, settings = val_setup(scene_spec, ckpt, scale)


def val_metrics(model) -> list[tuple[float, float]]:
    out = []
    for v in views:
        target = scene.images[v]  # (H, W, 3): SSIM needs the image's shape
        rgb = render_chunked(model, scene.rays(v), settings)["rgb"].reshape(target.shape)
        out.append((psnr(rgb, target), ssim(rgb, target)))
    return out


ref = val_metrics(pair)
ref_psnr = sum(p for p, _ in ref) / len(ref)
ref_ssim = sum(s for _, s in ref) / len(ref)
print(f"  {'fp32':<44} PSNR {ref_psnr:.3f} dB  SSIM {ref_ssim:.5f}", flush=True)
rows = []
for fine, coarse in itertools.product(SEARCH_FINE, SEARCH_COARSE):
    budget = f"samples:{fine}" + (f":coarse={coarse}" if coarse else "")
    name = f"{budget}+occupancy+coarse-grid"
    got = val_metrics(get_compressor(name).compress(pair, calibration))
    psnr_drop = ref_psnr - sum(p for p, _ in got) / len(got)
    ssim_drop = ref_ssim - sum(s for _, s in got) / len(got)
    worst = max(r[0] - g[0] for r, g in zip(ref, got))
    points = fine + (coarse or settings.n_coarse)
    ok = all(drop <= limit for drop, limit in zip((psnr_drop, worst, ssim_drop), limits))
    rows.append((points, name, ok))
    print(f"  {name:<44} {points:>3} points/ray  PSNR drop {psnr_drop:+.3f} dB (worst view {worst:+.3f})  "
          f"SSIM drop {ssim_drop:+.5f}  {'within' if ok else 'outside'} the gates",
          flush=True)
feasible = sorted((points, name) for points, name, ok in rows if ok)
print(f"  gates: mean PSNR drop {limits[0]} dB, worst view {limits[1]} dB, SSIM drop {limits[2]}; "
      f"chosen: {feasible[0][1] if feasible else 'none within the gates'}", flush=True)
