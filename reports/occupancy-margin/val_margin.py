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
import sys

import torch
import torch.nn.functional as F

import nerf_eval.compress.occupancy as occupancy
from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.measure.latency import PairedProtocol, time_paired
from nerf_eval.metrics import psnr, ssim
from nerf_eval.model import ModelPair
from nerf_eval.render import OCCUPANCY_KEY, RenderSettings, render_chunked
from nerf_eval.scenes import load_scene

scene_spec, ckpt, scale, bases = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4].split(",")
scene = load_scene(scene_spec)
scene = scene.rescaled(scale) if scale != 1.0 else scene
pair = load_checkpoint(ckpt).eval()
calibration = calibration_batch(scene, 4096)
settings = RenderSettings(white_bkgd=scene.white_bkgd)
views = list(scene.subset("val"))
print(f"{scene_spec} at scale {scale}, val views {views}, {settings.n_coarse}+{settings.n_fine} samples asked, "
      f"on {machine_summary()}", flush=True)
counts = {"coarse": 0, "fine": 0}


def count(name):
    def hook(module, args):
        counts[name] += args[0].shape[0]
    return hook


def block_margin(cells: torch.Tensor) -> torch.Tensor:
    return F.max_pool3d(cells.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0


def render_view(model: ModelPair, view: int) -> torch.Tensor:
    with torch.inference_mode():
        return render_chunked(model, scene.rays(view), settings)["rgb"].reshape(scene.images[view].shape)


reference = [render_view(pair, v) for v in views]
ref_metrics = [(psnr(r, scene.images[v]), ssim(r, scene.images[v])) for r, v in zip(reference, views)]
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
        hooks = [net.register_forward_pre_hook(count(n)) for n, net in model.networks().items()]
        counts.update(coarse=0, fine=0)
        images = [render_view(model, v) for v in views]
        for h in hooks:
            h.remove()
        rays = len(views) * scene.height * scene.width
        m = [(psnr(i, scene.images[v]), ssim(i, scene.images[v])) for i, v in zip(images, views)]
        drops = [a[0] - b[0] for a, b in zip(ref_metrics, m)]
        sd = sum(a[1] - b[1] for a, b in zip(ref_metrics, m)) / len(m)
        print(f"    {name:<21} cells coarse {grid.cells.float().mean():.3f} fine {grid.fine_cells.float().mean():.3f}  "
              f"points/ray coarse {counts['coarse'] / rays:5.1f} fine {counts['fine'] / rays:6.1f}  "
              f"PSNR drop {sum(drops) / len(drops):+.3f} dB (worst view {max(drops):+.3f})  SSIM drop {sd:+.5f}",
              flush=True)
    (before_name, before), (after_name, after) = models.items()
    timings = time_paired(lambda: render_view(before, views[0]), {after_name: lambda: render_view(after, views[0])},
                          PairedProtocol(rounds=5, order="shuffle"))
    for n, t in timings.items():
        print(f"    {n:<21} paired speed-up of val view {views[0]} against the block: {t.summary()}", flush=True)
