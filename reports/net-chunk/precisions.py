"""Render time of fp32, bf16 and int8-ptq-both by points per network call: python precisions.py plain|keep.

Renders the same 1024 test rays of `object` (64+128 samples, all torch threads) with each model at
4096, 16384 and 32768 points per call, paired against 4096 (`nerf_eval.measure.latency`, 5 rounds, the
order of the settings rotating), in a process whose glibc allocator is left as it starts (`plain`) or after
`nerf_eval.memory.keep_freed_memory` (`keep`, what `nerf-eval` sets). Run from the repository root.
"""

import dataclasses
import sys

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.measure.latency import PairedProtocol, time_paired
from nerf_eval.memory import keep_freed_memory
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene

if sys.argv[1:] == ["keep"]:
    keep_freed_memory()
scene = load_scene("object")
pair = load_checkpoint("checkpoints/object/checkpoint.pt").eval()
calibration = calibration_batch(scene, 4096)
models = {"fp32": pair, "bf16": get_compressor("bf16").compress(pair, calibration),
          "int8-ptq-both": get_compressor("int8-ptq-both").compress(pair, calibration)}
rays = scene.rays(list(scene.subset("test"))[0])[:1024]
base = RenderSettings(white_bkgd=scene.white_bkgd)
chunks = [4096, 16384, 32768]
rounds = 5


def render_at(model, points_per_call: int):
    return lambda: render_chunked(model, rays, dataclasses.replace(base, net_chunk=points_per_call))


print(f"{sys.argv[1:]}: object, 1024 test rays, on {machine_summary()}", flush=True)
with torch.inference_mode():
    for n, m in models.items():
        t = time_paired(render_at(m, chunks[0]), {c: render_at(m, c) for c in chunks[1:]},
                        PairedProtocol(rounds=rounds, order="alternate"))
        medians = {chunks[0]: t[chunks[1]].reference_latency_s, **{c: t[c].latency_s for c in chunks[1:]}}
        print(f"  {n:14s} " + ", ".join(f"{c} points/call {medians[c]:.3f} s" for c in chunks)
              + f"; {chunks[0]}/{chunks[1]}: {t[chunks[1]].summary()}", flush=True)
