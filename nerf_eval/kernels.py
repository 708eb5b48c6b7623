"""Which kernel runs the MLP's half-precision Linear layers at inference, chosen by a measurement on this CPU.

Eager torch runs a Linear+ReLU as a GEMM, a bias copied into the output beforehand and a separate ReLU
pass over the result. oneDNN's fused primitive (`torch.ops.mkldnn._linear_pointwise`, the op torch's
inductor emits for Linear+activation on the CPU) does the bias and the ReLU inside the GEMM. On a Xeon
with AMX the bias and ReLU passes of a bf16 layer cost almost as much as its GEMM; on other CPUs the two
are closer. So the kernel is measured, not assumed: `linear_kernel_probe(dtype)` times one pass through
the MLP's layer shapes both ways, interleaved, once per process for bf16 and fp16 (not where the dtype
is emulated), checks that both give the same result, and keeps eager torch unless oneDNN's is more than
10% faster. `NERF_LINEAR_KERNEL=eager|onednn` pins one.

fp32, the baseline every speed-up is a ratio to, stays on torch's kernels: the same results bit for bit
on every machine, for a median gain of the fused kernel of 6% on an AMX Xeon's fp32 renders (0.99-1.20x
per round; bf16 1.38x, fp16 1.29x: `reports/linear-kernels/ab-amx.log`). The fused op has no autograd
formula, so it runs only where no gradient is recorded (rendering and evaluation, not training), outside
autocast, on the CPU, for plain `nn.Linear` layers.
"""

from __future__ import annotations

import os
import statistics
import time
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from nerf_eval.hardware import is_slow_dtype

KERNELS = ("eager", "onednn")
HALF_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16"}  # fp32 stays eager: see linear_kernel_probe
KERNEL_ENV = "NERF_LINEAR_KERNEL"
TIE = 1.10  # oneDNN must be this much faster to replace eager torch (timing noise is a few percent)
# (in, out) features of one MLP pass: the encoding's 63, the 256-wide trunk, the skip's 319, the view branch
PROBE_SHAPES = ((63, 256), (256, 256), (256, 256), (319, 256), (256, 256), (283, 128))


def _fused_op():
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None


def _probe(dtype: torch.dtype, rows: int = 4096, rounds: int = 9) -> tuple[dict[str, float], float, float]:
    """Time one pass through PROBE_SHAPES per kernel, interleaved round by round. Returns each kernel's
    median seconds, the median over rounds of eager's time over oneDNN's (the paired ratio, which load
    that changes between rounds does not move), and the largest difference between the kernels' outputs
    relative to their scale."""
    gen = torch.Generator().manual_seed(0)
    layers = [((torch.randn(o, i, generator=gen) / i ** 0.5).to(dtype),
               (torch.randn(o, generator=gen) * 0.1).to(dtype)) for i, o in PROBE_SHAPES]
    inputs = {i: torch.rand(rows, i, generator=gen).to(dtype) for i, _ in PROBE_SHAPES}
    # the first layer reads the encoded points as a view of [points | view directions], as in NeRF.forward
    inputs[PROBE_SHAPES[0][0]] = torch.rand(rows, 90, generator=gen).to(dtype)[:, :PROBE_SHAPES[0][0]]
    fused = _fused_op()

    def run(kernel: str) -> tuple[float, list[torch.Tensor]]:
        start = time.perf_counter()
        outs = []
        for (w, b), (i, _) in zip(layers, PROBE_SHAPES):
            x = inputs[i]
            outs.append(fused(x, w, b, "relu", [], "") if kernel == "onednn" else torch.relu(F.linear(x, w, b)))
        return time.perf_counter() - start, outs

    times: dict[str, list[float]] = {k: [] for k in KERNELS}
    with torch.inference_mode():
        ref = {k: run(k)[1] for k in KERNELS}  # warm-up: the first calls build oneDNN's primitives
        err = max(((a.float() - b.float()).abs().max() / (b.float().abs().max() + 1e-6)).item()
                  for a, b in zip(ref["onednn"], ref["eager"]))
        for r in range(rounds):
            for k in KERNELS[r % 2:] + KERNELS[:r % 2]:
                times[k].append(run(k)[0])
    ratio = statistics.median(e / o for e, o in zip(times["eager"], times["onednn"]))
    return {k: statistics.median(t) for k, t in times.items()}, ratio, err


@lru_cache(maxsize=None)
def linear_kernel_probe(dtype: torch.dtype) -> dict:
    """The Linear kernel chosen for `dtype` in this process and why: {"kernel", "reason", "seconds"}."""
    pinned = os.environ.get(KERNEL_ENV, "").strip()
    if pinned:
        if pinned not in KERNELS:
            from nerf_eval.errors import NerfEvalError

            raise NerfEvalError(f"{KERNEL_ENV}={pinned}: not a Linear kernel (choose from {', '.join(KERNELS)})")
        if pinned == "onednn" and _fused_op() is None:
            from nerf_eval.errors import NerfEvalError

            raise NerfEvalError(f"{KERNEL_ENV}=onednn: this torch has no oneDNN fused linear")
        return {"kernel": pinned, "reason": f"pinned by {KERNEL_ENV}", "seconds": {}}
    if _fused_op() is None:
        return {"kernel": "eager", "reason": "this torch has no oneDNN fused linear", "seconds": {}}
    if dtype not in HALF_DTYPES:  # fp32 is the baseline: the same kernels, bit for bit, on every machine
        return {"kernel": "eager", "reason": f"{dtype} stays on torch's kernels", "seconds": {}}
    if is_slow_dtype(dtype):  # timing an emulated dtype would take seconds, and neither kernel helps it
        return {"kernel": "eager", "reason": f"this CPU emulates {dtype}", "seconds": {}}
    try:
        seconds, ratio, err = _probe(dtype)
    except RuntimeError as e:  # a dtype oneDNN does not implement on this CPU
        return {"kernel": "eager", "reason": f"oneDNN failed here ({str(e).splitlines()[0][:80]})", "seconds": {}}
    seconds = {k: round(s, 6) for k, s in seconds.items()}
    tolerance = 4 * torch.finfo(dtype).eps
    if err > tolerance:
        return {"kernel": "eager", "reason": f"oneDNN's result differs by {err:.2g} (more than {tolerance:.2g})",
                "seconds": seconds}
    return {"kernel": "onednn" if ratio > TIE else "eager",
            "reason": f"Linear+ReLU pass at the MLP's shapes, eager torch {ratio:.2f}x oneDNN's time, measured here",
            "seconds": seconds}


def linear_kernels() -> dict[str, dict]:
    """Each half dtype's choice on this machine, {"bf16": {"kernel", "reason", "seconds"}, ...}: for the
    records of where a figure was measured."""
    return {name: linear_kernel_probe(d) for d, name in HALF_DTYPES.items()}


def linear(layer: nn.Module, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """`layer(x)`, followed by a ReLU when `relu`, through this machine's kernel for x's dtype.

    Under FX tracing `x` is a proxy and the eager form is traced, which is what int8 quantization
    rewrites; with gradients recorded, under autocast or off the CPU the eager form runs too."""
    if (not torch.is_grad_enabled() and isinstance(x, torch.Tensor) and x.dtype in HALF_DTYPES
            and type(layer) is nn.Linear and x.device.type == "cpu" and x.dtype == layer.weight.dtype
            and not torch.is_autocast_enabled("cpu") and linear_kernel_probe(x.dtype)["kernel"] == "onednn"):
        return _fused_op()(x, layer.weight, layer.bias, "relu" if relu else "none", [], "")
    y = layer(x)
    return torch.relu(y) if relu else y
