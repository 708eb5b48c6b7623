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
import sys

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.measure.latency import PairedProtocol, time_paired
from nerf_eval.metrics import psnr, ssim
from nerf_eval.model import ModelPair
from nerf_eval.render import OCCUPANCY_KEY, RenderSettings, render_chunked
from nerf_eval.scenes import load_scene

STOPS = (1e-3, 3e-3, 1e-2)
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


def render_view(model: ModelPair, view: int) -> torch.Tensor:
    with torch.inference_mode():
        return render_chunked(model, scene.rays(view), settings)["rgb"].reshape(scene.images[view].shape)


reference = [render_view(pair, v) for v in views]
ref_metrics = [(psnr(r, scene.images[v]), ssim(r, scene.images[v])) for r, v in zip(reference, views)]
for base in bases:
    baked = get_compressor(base).compress(pair, calibration)
    grid = baked.meta[OCCUPANCY_KEY]
    print(f"  {base}", flush=True)
    models = {}
    for stop in STOPS:
        name = f"stop {stop:g}"
        model = baked.copy_with(**{OCCUPANCY_KEY: dataclasses.replace(grid, stop_transmittance=stop)})
        hooks = [net.register_forward_pre_hook(count(n)) for n, net in model.networks().items()]
        counts.update(coarse=0, fine=0)
        images = [render_view(model, v) for v in views]
        for h in hooks:
            h.remove()
        rays = len(views) * scene.height * scene.width
        m = [(psnr(i, scene.images[v]), ssim(i, scene.images[v])) for i, v in zip(images, views)]
        drops = [a[0] - b[0] for a, b in zip(ref_metrics, m)]
        sd = sum(a[1] - b[1] for a, b in zip(ref_metrics, m)) / len(m)
        print(f"    {name:<10} points/ray coarse {counts['coarse'] / rays:5.1f} fine {counts['fine'] / rays:6.1f}  "
              f"PSNR drop {sum(drops) / len(drops):+.3f} dB (worst view {max(drops):+.3f})  SSIM drop {sd:+.5f}",
              flush=True)
        models[name] = model
    (first_name, first), *rest = models.items()
    timings = time_paired(lambda: render_view(first, views[0]),
                          {n: (lambda m=m: render_view(m, views[0])) for n, m in rest},
                          PairedProtocol(rounds=5, order="shuffle"))
    for n, t in timings.items():
        print(f"    {n:<10} paired speed-up of val view {views[0]} against {first_name}: {t.summary()}", flush=True)
