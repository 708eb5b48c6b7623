"""Eager torch against oneDNN's fused Linear kernel, per dtype, on whole renders: python ab.py [ROUNDS].

Renders the same 1024 test rays of `object` (64+128 samples, all torch threads, the allocator as
`nerf-eval` sets it) with fp32, bf16 and fp16, each model with both kernels, paired
(`nerf_eval.measure.latency`: eager the reference, the order alternating between rounds); prints each
model's median render time per kernel and the per-round ratios (eager's time over oneDNN's). The kernel
is pinned through NERF_LINEAR_KERNEL, as a user would;
fp32, which the library keeps on torch's kernels, is let through to the fused kernel here to measure it.
"""
import os
import sys

import torch

from nerf_eval import kernels
from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure.latency import PairedProtocol, time_pair
from nerf_eval.memory import keep_freed_memory
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene

keep_freed_memory()
kernels.HALF_DTYPES = {**kernels.HALF_DTYPES, torch.float32: "fp32"}  # measure fp32's fused kernel too
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
scene = load_scene("object")
pair = load_checkpoint("checkpoints/object/checkpoint.pt").eval()
models = {"fp32": pair, "bf16": get_compressor("bf16").compress(pair, None),
          "fp16": get_compressor("fp16").compress(pair, None)}
rays = scene.rays(list(scene.subset("test"))[0])[:1024]
settings = RenderSettings(white_bkgd=scene.white_bkgd)


def use(kernel: str) -> None:
    os.environ[kernels.KERNEL_ENV] = kernel
    kernels.linear_kernel_probe.cache_clear()


print(f"object, 1024 test rays, {settings.n_coarse}+{settings.n_fine} samples, on {machine_summary()}; "
      f"load average {os.getloadavg()[0]:.2f}", flush=True)


def render_with(kernel: str, model):
    def run():
        use(kernel)
        return render_chunked(model, rays, settings)
    return run


timings = {}
with torch.inference_mode():
    for k in kernels.KERNELS:  # warm-up: oneDNN builds its primitives on first use
        for m in models.values():
            render_with(k, m)()
    for n, m in models.items():
        timings[n] = time_pair(render_with("eager", m), render_with("onednn", m),
                               PairedProtocol(rounds=rounds, warmup=0, order="alternate"), name=n)
del os.environ[kernels.KERNEL_ENV]
kernels.linear_kernel_probe.cache_clear()
del kernels.HALF_DTYPES[torch.float32]
for n, t in timings.items():
    print(f"  {n}: eager {t.reference_latency_s:.3f} s, oneDNN fused {t.latency_s:.3f} s; eager/oneDNN "
          f"{t.summary()} (rounds: {', '.join(f'{x:.2f}' for x in t.ratios)})")
chosen = kernels.linear_kernels().items()
print("probe chooses here: " + "; ".join(f"{d} {c['kernel']} ({c['reason']})" for d, c in chosen))
