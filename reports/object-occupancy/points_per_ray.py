"""How many points each network evaluates per ray with the default occupancy grid, on `object`'s test views.

Run from the repository root: `python reports/object-occupancy/points_per_ray.py [scene] [checkpoint]`.
Counts are deterministic (the grid is baked from seeded calibration rays; rendering is deterministic), so
they do not depend on the machine or its load; they bound the speed-up skipping alone can give.
"""

import sys

import torch
from torch import nn

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.measure.batches import calibration_batch
from nerf_eval.model import ModelPair
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene


class Counter(nn.Module):
    """Passes inputs through `net` and counts them."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.points = net, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.points += x.shape[0]
        return self.net(x)


scene_spec, checkpoint = (sys.argv[1:3] if len(sys.argv) > 2 else ("object", "checkpoints/object/checkpoint.pt"))
scene, pair = load_scene(scene_spec), load_checkpoint(checkpoint)
occupied = get_compressor("occupancy").compress(pair, calibration_batch(scene, 2048))
info = occupied.meta["occupancy"].info
settings = RenderSettings(white_bkgd=scene.white_bkgd)
print(f"{scene_spec}: grids {info['resolution']}^3, "
      + ", ".join(f"{net} network {100 * info[f'{net}_occupied']:.1f}% of cells occupied "
                  f"({100 * info[f'{net}_occupied_before_dilation']:.1f}% before dilation)" for net in ("coarse", "fine"))
      + f"; {settings.n_coarse}+{settings.n_fine} samples")
print("| test view | coarse points per ray (of 64) | fine points per ray (of 192) | share of plain render's points |")
print("|---|---|---|---|")
total = [0, 0, 0]
for view in scene.subset("test"):
    rays = scene.rays(view)
    coarse, fine = Counter(occupied.coarse), Counter(occupied.fine)
    render_chunked(ModelPair(coarse, fine, occupied.config, occupied.meta), rays, settings)
    n = len(rays)
    share = (coarse.points + fine.points) / (n * (2 * settings.n_coarse + settings.n_fine))
    print(f"| {view} | {coarse.points / n:.1f} | {fine.points / n:.1f} | {100 * share:.0f}% |")
    total = [total[0] + coarse.points, total[1] + fine.points, total[2] + n]
n = total[2]
share = (total[0] + total[1]) / (n * (2 * settings.n_coarse + settings.n_fine))
print(f"| all | {total[0] / n:.1f} | {total[1] / n:.1f} | {100 * share:.0f}% (at most {1 / share:.2f}x from skipping) |")
