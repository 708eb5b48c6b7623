"""forward's sample budgets on 12 more held-out poses: python extra_poses.py NAMES

`forward` is procedural, so poses that no split holds can be rendered exactly: 12 eyes on the same spiral
as its 60 views, half-way between neighbours (index 2.5, 7.5, ... 57.5; none is a training pose), at the
test scale (50x50, point-sampled ground truth). Renders fp32 and each of NAMES there and prints the mean
PSNR / SSIM drop and the worst view's PSNR drop, as `val_budget.py` does on the three val views: a check of
how well three val views predict a budget's drop, not a selection (it was run after the test views).
"""
import dataclasses
import math
import sys

import numpy as np
import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.metrics import psnr, ssim
from nerf_eval.rays import get_rays
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene
from nerf_eval.scenes.procedural import BUILTIN_SCENES, look_at, make_scene

N_POSES = 12

scene = load_scene("forward").rescaled(0.5)
pair = load_checkpoint("checkpoints/forward/checkpoint.pt").eval()
cal = calibration_batch(scene, 4096)
settings = RenderSettings(white_bkgd=scene.white_bkgd)
_, analytic = make_scene("forward", size=8)  # the analytic scene does not depend on the size
spec = BUILTIN_SCENES["forward"]
rng = np.random.default_rng(123)
poses, images = [], []
for j in range(N_POSES):
    k = 2.5 + 5 * j  # between views of the 60-view spiral (procedural._poses' forward spiral at a fractional index)
    r = 0.6 * math.sqrt((k + 0.5) / spec.n_views)
    a = k * math.pi * (3.0 - math.sqrt(5.0))
    eye = np.array([r * math.cos(a), -4.0, 0.3 + 0.5 * r * math.sin(a)])
    target = eye + np.array([0.0, 1.0, -0.12]) + rng.uniform(-0.02, 0.02, 3)
    pose = torch.tensor(look_at(eye, target), dtype=torch.float32)
    o, d = get_rays(scene.height, scene.width, scene.focal, pose)
    rgb, _ = analytic.trace(o, d)
    poses.append(pose)
    images.append(rgb.float().reshape(scene.height, scene.width, 3))
extra = dataclasses.replace(scene, images=torch.stack(images), poses=torch.stack(poses), depths=None,
                            splits={"train": [], "val": list(range(N_POSES)), "test": []})


def metrics(model) -> list[tuple[float, float]]:
    out = []
    for v in range(N_POSES):
        img = render_chunked(model, extra.rays(v), settings)["rgb"].reshape(extra.images[v].shape)
        out.append((psnr(img, extra.images[v]), ssim(img, extra.images[v])))
    return out


ref = metrics(pair)
rp = sum(p for p, _ in ref) / N_POSES
rs = sum(s for _, s in ref) / N_POSES
print(f"forward, {N_POSES} poses between the spiral's views, {scene.width}x{scene.height}, "
      f"{settings.n_coarse}+{settings.n_fine} samples asked, on {machine_summary()}", flush=True)
print(f"  {'fp32':<44} PSNR {rp:.3f} dB  SSIM {rs:.5f}", flush=True)
for name in sys.argv[1].split(","):
    g = metrics(get_compressor(name).compress(pair, cal))
    pd = rp - sum(p for p, _ in g) / N_POSES
    sd = rs - sum(s for _, s in g) / N_POSES
    worst = max(r[0] - x[0] for r, x in zip(ref, g))
    print(f"  {name:<44} PSNR drop {pd:+.3f} dB (worst view {worst:+.3f})  SSIM drop {sd:+.5f}", flush=True)
