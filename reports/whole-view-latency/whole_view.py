"""Paired whole-view speed-ups: python whole_view.py SCENE CHECKPOINT SCALE [COMPRESSORS].

fp32 and each compressor render the first test view in full, interleaved round by round
(nerf_eval.measure's paired protocol, shared reference calls), on all of torch's threads; prints the
median of per-round ratios with their IQR. `nerf-eval report`'s "whole render" column times each model's
views one model after another, which a shared machine's load can skew; this pairs them.
"""
import sys

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import PairedProtocol, calibration_batch, time_renders
from nerf_eval.render import RenderSettings
from nerf_eval.scenes import load_scene

DEFAULT = "samples,occupancy,samples+occupancy,int8-ptq-both,occupancy+int8-ptq-both,samples+occupancy+int8-ptq-both"
scene_spec, ckpt, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
names = (sys.argv[4] if len(sys.argv) > 4 else DEFAULT).split(",")
scene = load_scene(scene_spec)
scene = scene.rescaled(scale) if scale != 1.0 else scene
pair = load_checkpoint(ckpt).eval()
calibration = calibration_batch(scene, 4096)  # as nerf-eval report's default
models = {name: get_compressor(name).compress(pair, calibration) for name in names}
view = list(scene.subset("test"))[0]
rays = scene.rays(view)
settings = RenderSettings(white_bkgd=scene.white_bkgd)
print(f"{scene_spec} test view {view} ({len(rays)} rays, {settings.n_coarse}+{settings.n_fine} samples) on "
      f"{machine_summary()}", flush=True)
out = time_renders(pair, models, rays, settings, PairedProtocol(rounds=3, warmup=1))
for name, t in out.items():
    print(f"  {name:<34} {t.summary()}; median {t.latency_s:.2f} s (fp32 {t.reference_latency_s:.2f} s)")
