"""The baked coarse table's resolution, chosen on val views: `coarse-grid` at 64^3 (the default) against 96^3
and 128^3 in `samples+occupancy+coarse-grid`.

python reports/occupancy-margin/val_grid_res.py SCENE CHECKPOINT SCALE RES[,RES...] [SAMPLES]

For each resolution, bakes the composition and renders the val views of SCENE at SCALE (`val_views.py`):
the points each network was queried at per ray, the mean / worst-view PSNR drop and the SSIM drop against
fp32, then the paired speed-up over fp32 of rendering the first val view (interleaved, 3 rounds,
`nerf_eval.measure.latency.time_paired`). `samples+occupancy` (no table) is measured beside them. SAMPLES replaces the
`samples` stage (e.g. `samples:32:coarse=32`, flower's val choice). Run from
the repository root with `.venv/bin/python`.
"""
import sys

from nerf_eval.compress import get_compressor
from nerf_eval.measure.latency import PairedProtocol, time_paired
from val_views import calibration, measured, pair, render_view, views

resolutions = [int(r) for r in sys.argv[4].split(",")]  # val_views reads the same argument as its bases
samples = sys.argv[5] if len(sys.argv) > 5 else "samples"
names = [f"{samples}+occupancy"] + [f"{samples}+occupancy+coarse-grid:{r}" for r in resolutions]
models = {}
for name in names:
    models[name] = get_compressor(name).compress(pair, calibration)
    print(f"  {name:<52} {measured(models[name])}", flush=True)
timings = time_paired(lambda: render_view(pair, views[0]),
                      {n: (lambda m=m: render_view(m, views[0])) for n, m in models.items()},
                      PairedProtocol(rounds=3, order="shuffle"))
for n, t in timings.items():
    print(f"  {n:<52} paired speed-up over fp32 on val view {views[0]}: {t.summary()}", flush=True)
