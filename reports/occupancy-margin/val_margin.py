"""Occupancy's margin: the cells sharing a face with an occupied one, against the whole 3x3x3 block.

python reports/occupancy-margin/val_margin.py SCENE CHECKPOINT SCALE BASE[,BASE...]

For each BASE (a composition holding `occupancy`, e.g. `samples+occupancy+coarse-grid`), bakes it twice from
the same hits (the bake is seeded): with the margin `bake_occupancy` adds now (`face_margin`, the 6 cells
across the faces) and with the 3x3x3 block it added before (26 neighbours). Renders the val views of SCENE
at SCALE with both and prints the share of occupied cells, the points each network was queried at per ray,
the mean / worst-view PSNR drop and the SSIM drop against fp32, and the paired speed-up of rendering the first
val view with the face margin against the block (interleaved, 5 rounds, `nerf_eval.measure.latency.time_paired`).
Run from the repository root with `.venv/bin/python`.
"""
import torch
import torch.nn.functional as F

import nerf_eval.compress.occupancy as occupancy
from nerf_eval.compress import get_compressor
from nerf_eval.measure.latency import PairedProtocol, time_paired
from nerf_eval.render import OCCUPANCY_KEY
from val_views import bases, calibration, measured, pair, render_view, views


def block_margin(cells: torch.Tensor) -> torch.Tensor:
    return F.max_pool3d(cells.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0


face_margin = occupancy.face_margin
for base in bases:
    models = {}
    for name, margin in (("3x3x3 block (before)", block_margin), ("faces (now)", face_margin)):
        occupancy.face_margin = margin
        models[name] = get_compressor(base).compress(pair, calibration)
    occupancy.face_margin = face_margin
    print(f"  {base}", flush=True)
    for name, model in models.items():
        grid = model.meta[OCCUPANCY_KEY]
        print(f"    {name:<21} cells coarse {grid.cells.float().mean():.3f} fine {grid.fine_cells.float().mean():.3f}  "
              f"{measured(model)}", flush=True)
    (before_name, before), (after_name, after) = models.items()
    timings = time_paired(lambda: render_view(before, views[0]), {after_name: lambda: render_view(after, views[0])},
                          PairedProtocol(rounds=5, order="shuffle"))
    for n, t in timings.items():
        print(f"    {n:<21} paired speed-up of val view {views[0]} against the block: {t.summary()}", flush=True)
