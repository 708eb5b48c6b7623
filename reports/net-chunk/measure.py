"""fp32 render time of one batch of rays by points per network call, in a process whose glibc allocator
is left as it starts (`plain`) and in one where `nerf_eval.memory.keep_freed_memory` ran first (`keep`).

Run from the repository root: `python reports/net-chunk/measure.py plain; python reports/net-chunk/measure.py keep`.
The variants are interleaved round by round on the same rays, 1 torch thread.
"""

import statistics
import sys
import time

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.hardware import machine_summary
from nerf_eval.measure.batches import latency_batch
from nerf_eval.render import RenderSettings, render_rays
from nerf_eval.scenes import load_scene

torch.set_num_threads(1)
if sys.argv[1:] == ["keep"]:
    from nerf_eval.memory import keep_freed_memory

    keep_freed_memory()
pair = load_checkpoint("checkpoints/object/checkpoint.pt")
rays = latency_batch(load_scene("object"), 512)
variants = {"one call per render batch": RenderSettings(chunk=512, net_chunk=10 ** 9),
            "8192 points per call": RenderSettings(chunk=512, net_chunk=8192),
            "4096 points per call (default)": RenderSettings(chunk=512)}
times: dict[str, list[float]] = {k: [] for k in variants}
with torch.inference_mode():
    for _ in range(5):
        for name, settings in variants.items():
            start = time.perf_counter()
            render_rays(pair, rays, settings)
            times[name].append(time.perf_counter() - start)
print(f"{sys.argv[1]}: 512 rays of object at 64+128 samples, fp32; {machine_summary()}; load {open('/proc/loadavg').read().split()[0]}")
for name, t in times.items():
    print(f"  {name:32s} median {statistics.median(t):.2f} s  (" + " ".join(f"{x:.2f}" for x in t) + ")")
