"""Per-op CPU profile of whole renders: python op_profile.py COMPRESSORS [PROFILED].

Renders 1024 test rays of `object` (64+128 samples) with fp32 and each compressor, prints two timed
renders of each, then torch.profiler's table (self CPU time) of one render of each model in PROFILED.
Run with NERF_LINEAR_KERNEL=eager to see the half-precision networks without the fused kernel.
"""
import sys
import time

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.measure import calibration_batch
from nerf_eval.scenes import load_scene
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.hardware import machine_summary
from nerf_eval.memory import keep_freed_memory
keep_freed_memory()
torch.manual_seed(0)
scene = load_scene("object")
pair = load_checkpoint("checkpoints/object/checkpoint.pt").eval()
cal = calibration_batch(scene, 4096)
names = sys.argv[1].split(",")
models = {"fp32": pair} | {n: get_compressor(n).compress(pair, cal) for n in names if n != "fp32"}
view = list(scene.subset("test"))[0]
rays = scene.rays(view)[:1024]
s = RenderSettings(white_bkgd=scene.white_bkgd)
print(machine_summary(), flush=True)
with torch.inference_mode():
    for n, m in models.items():
        render_chunked(m, rays, s)
    for r in range(2):
        for n, m in models.items():
            t = time.perf_counter()
            render_chunked(m, rays, s)
            print(n, "render s", round(time.perf_counter() - t, 3), flush=True)
    if len(sys.argv) > 2:
        for n in sys.argv[2].split(","):
            with torch.profiler.profile() as prof:
                render_chunked(models[n], rays, s)
            print(n)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
