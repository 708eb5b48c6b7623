"""Occupancy's early-stop transmittance, chosen on val views: 1e-3 against 3e-3 and 1e-2.

python reports/occupancy-margin/val_stop.py SCENE CHECKPOINT SCALE BASE[,BASE...]

For each BASE (a composition holding `occupancy`), bakes it once (with the face margin) and renders the val
views of SCENE at SCALE with the same grids stopping rays at transmittance 1e-3 (the default before), 3e-3
and 1e-2. Prints the points each network was queried at per ray, the mean / worst-view PSNR drop and the SSIM
drop against fp32, and the paired speed-up of rendering the first val view at 3e-3 and 1e-2 against 1e-3
(interleaved, 5 rounds, `nerf_eval.measure.latency.time_paired`). Run from the repository root with
`.venv/bin/python`.
"""
import dataclasses

from nerf_eval.compress import get_compressor
from nerf_eval.measure.latency import PairedProtocol, time_paired
from nerf_eval.render import OCCUPANCY_KEY
from val_views import bases, calibration, measured, pair, render_view, views

STOPS = (1e-3, 3e-3, 1e-2)
for base in bases:
    baked = get_compressor(base).compress(pair, calibration)
    grid = baked.meta[OCCUPANCY_KEY]
    print(f"  {base}", flush=True)
    models = {}
    for stop in STOPS:
        name = f"stop {stop:g}"
        model = baked.copy_with(**{OCCUPANCY_KEY: dataclasses.replace(grid, stop_transmittance=stop)})
        print(f"    {name:<10} {measured(model)}", flush=True)
        models[name] = model
    (first_name, first), *rest = models.items()
    timings = time_paired(lambda: render_view(first, views[0]),
                          {n: (lambda m=m: render_view(m, views[0])) for n, m in rest},
                          PairedProtocol(rounds=5, order="shuffle"))
    for n, t in timings.items():
        print(f"    {n:<10} paired speed-up of val view {views[0]} against {first_name}: {t.summary()}", flush=True)
