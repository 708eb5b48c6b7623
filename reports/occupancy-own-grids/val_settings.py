"""Occupancy's per-network grids, stop transmittance and march step, chosen on val views.

python reports/occupancy-own-grids/val_settings.py SCENE CHECKPOINT SCALE BASE[,BASE...]

For each BASE (a composition holding `occupancy`, e.g. `samples+occupancy+coarse-grid`), bakes it once and
renders the val views of SCENE at SCALE with five settings of the same grids, each adding one change to the
one before: one grid of both networks' density for both passes, early stop at transmittance 1e-4, 16
samples per marching step and no first step (the settings before); each network's own grid for its pass;
stop at 1e-3; a first marching step to where the coarse pass's transmittance fell below the stop (the
settings chosen); 8 samples per later step (tried, not chosen). Prints the mean / worst-view PSNR drop and
the SSIM drop against fp32, the points each network was queried at per ray, and the paired speed-up of
rendering the first val view against the settings before (interleaved, 5 rounds,
`nerf_eval.measure.latency.time_paired`). Run from the repository root with `.venv/bin/python`.
"""
import dataclasses
import sys

import torch

import nerf_eval.render as render
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


PREDICTED_STOP = render.predicted_stop


def render_view(model: ModelPair, view: int, march: int, first: bool = True) -> torch.Tensor:
    render.MARCH_SAMPLES = march
    render.predicted_stop = PREDICTED_STOP if first else (lambda weights, *a: torch.zeros_like(weights[:, 0], dtype=torch.long))
    with torch.inference_mode():
        return render_chunked(model, scene.rays(view), settings)["rgb"].reshape(scene.images[view].shape)


reference = [render_view(pair, v, render.MARCH_SAMPLES) for v in views]
ref_metrics = [(psnr(r, scene.images[v]), ssim(r, scene.images[v])) for r, v in zip(reference, views)]
for base in bases:
    baked = get_compressor(base).compress(pair, calibration)
    grid = baked.meta[OCCUPANCY_KEY]
    one = dataclasses.replace(grid, cells=grid.cells | grid.fine_cells, fine_cells=None)
    print(f"  {base}: cells occupied, coarse {grid.cells.float().mean():.3f}, fine {grid.fine_cells.float().mean():.3f}, "
          f"both {one.cells.float().mean():.3f}", flush=True)
    variants = {"one grid, stop 1e-4, march 16": (one, 1e-4, 16, False),
                "own grids, stop 1e-4, march 16": (grid, 1e-4, 16, False),
                "own grids, stop 1e-3, march 16": (grid, 1e-3, 16, False),
                "+ first step to coarse stop": (grid, 1e-3, 16, True),
                "+ first step, march 8": (grid, 1e-3, 8, True)}
    models = {}
    for name, (g, stop, march, first) in variants.items():
        model = baked.copy_with(**{OCCUPANCY_KEY: dataclasses.replace(g, stop_transmittance=stop)})
        hooks = [net.register_forward_pre_hook(count(n)) for n, net in model.networks().items()]
        counts.update(coarse=0, fine=0)
        images = [render_view(model, v, march, first) for v in views]
        for h in hooks:
            h.remove()
        rays = len(views) * scene.height * scene.width
        m = [(psnr(i, scene.images[v]), ssim(i, scene.images[v])) for i, v in zip(images, views)]
        drops = [a[0] - b[0] for a, b in zip(ref_metrics, m)]
        sd = sum(a[1] - b[1] for a, b in zip(ref_metrics, m)) / len(m)
        print(f"    {name:<32} points/ray coarse {counts['coarse'] / rays:5.1f} fine {counts['fine'] / rays:6.1f}  "
              f"PSNR drop {sum(drops) / len(drops):+.3f} dB (worst view {max(drops):+.3f})  SSIM drop {sd:+.5f}",
              flush=True)
        models[name] = (model, march, first)
    before = next(iter(models.values()))
    timings = time_paired(lambda: render_view(*before[:1], views[0], *before[1:]),
                          {n: (lambda m=m: render_view(m[0], views[0], *m[1:])) for n, m in list(models.items())[1:]},
                          PairedProtocol(rounds=5, order="shuffle"))
    for n, t in timings.items():
        print(f"    {n:<32} paired speed-up of val view {views[0]} against the settings before: {t.summary()}",
              flush=True)
