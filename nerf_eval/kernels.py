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
on every machine, for a median gain of the fused kernel of 10% on an AMX Xeon's fp32 renders (1.09-1.11x
per round; bf16 1.47x, fp16 1.38x: `reports/linear-kernels/ab-amx.log`). The fused op has no autograd
formula, so it runs only where no gradient is recorded (rendering and evaluation, not training), outside
autocast, on the CPU, for plain `nn.Linear` layers.

int8 heads (`int8-ptq-*:heads=int8`) run oneDNN's int8 Linear with an fp32 output where
`int8_head_kernel` finds it here and exact on full-range sums; elsewhere they compute the same in fp32.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from nerf_eval.errors import NerfEvalError
from nerf_eval.hardware import is_slow_dtype
from nerf_eval.measure.latency import PairedProtocol, PairedTiming, time_pair

KERNELS = ("eager", "onednn")
HALF_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16"}  # fp32 stays eager: see linear_kernel_probe
KERNEL_ENV = "NERF_LINEAR_KERNEL"
TIE = 1.10  # oneDNN must be this much faster to replace eager torch (timing noise is a few percent)
# (in, out) features of one MLP pass: the encoding's 63, the 256-wide trunk, the skip's 319, the view branch
PROBE_SHAPES = ((63, 256), (256, 256), (256, 256), (319, 256), (256, 256), (283, 128))
# each round times both kernels, eager first and oneDNN first alternating; the probe warms both up itself
PROTOCOL = PairedProtocol(rounds=9, warmup=0, order="alternate", pairing="adjacent")


def _fused_op():
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None


def _probe(dtype: torch.dtype, rows: int = 4096) -> tuple[PairedTiming, float]:
    """Time one pass through PROBE_SHAPES with each kernel, paired and interleaved (eager torch the
    reference, `nerf_eval.measure.latency`), and the largest difference between the kernels' outputs
    relative to their scale. The timing's `speedup` is the median over rounds of eager's time over oneDNN's,
    which load that changes between rounds does not move."""
    gen = torch.Generator().manual_seed(0)
    layers = [((torch.randn(o, i, generator=gen) / i ** 0.5).to(dtype),
               (torch.randn(o, generator=gen) * 0.1).to(dtype)) for i, o in PROBE_SHAPES]
    inputs = {i: torch.rand(rows, i, generator=gen).to(dtype) for i, _ in PROBE_SHAPES}
    # the first layer reads the encoded points as a view of [points | view directions], as in NeRF.forward
    inputs[PROBE_SHAPES[0][0]] = torch.rand(rows, 90, generator=gen).to(dtype)[:, :PROBE_SHAPES[0][0]]
    fused = _fused_op()

    def run(kernel: str) -> list[torch.Tensor]:
        return [fused(inputs[i], w, b, "relu", [], "") if kernel == "onednn"
                else torch.relu(F.linear(inputs[i], w, b)) for (w, b), (i, _) in zip(layers, PROBE_SHAPES)]

    with torch.inference_mode():
        eager, onednn = run("eager"), run("onednn")  # the warm-up too: first calls build oneDNN's primitives
        err = max(((a.float() - b.float()).abs().max() / (b.float().abs().max() + 1e-6)).item()
                  for a, b in zip(onednn, eager))
        timing = time_pair(lambda: run("eager"), lambda: run("onednn"), PROTOCOL, name="onednn")
    return timing, err


@lru_cache(maxsize=None)
def linear_kernel_probe(dtype: torch.dtype) -> dict:
    """The Linear kernel chosen for `dtype` in this process and why: {"kernel", "reason", "seconds"}."""
    pinned = os.environ.get(KERNEL_ENV, "").strip()
    if pinned:
        if pinned not in KERNELS:
            raise NerfEvalError(f"{KERNEL_ENV}={pinned}: not a Linear kernel (choose from {', '.join(KERNELS)})")
        if pinned == "onednn" and _fused_op() is None:
            raise NerfEvalError(f"{KERNEL_ENV}=onednn: this torch has no oneDNN fused linear")
        return {"kernel": pinned, "reason": f"pinned by {KERNEL_ENV}", "seconds": {}}
    if _fused_op() is None:
        return {"kernel": "eager", "reason": "this torch has no oneDNN fused linear", "seconds": {}}
    if dtype not in HALF_DTYPES:  # fp32 is the baseline: the same kernels, bit for bit, on every machine
        return {"kernel": "eager", "reason": f"{dtype} stays on torch's kernels", "seconds": {}}
    if is_slow_dtype(dtype):  # timing an emulated dtype would take seconds, and neither kernel helps it
        return {"kernel": "eager", "reason": f"this CPU emulates {dtype}", "seconds": {}}
    try:
        timing, err = _probe(dtype)
    except RuntimeError as e:  # a dtype oneDNN does not implement on this CPU
        return {"kernel": "eager", "reason": f"oneDNN failed here ({str(e).splitlines()[0][:80]})", "seconds": {}}
    ratio = timing.speedup
    seconds = {"eager": round(timing.reference_latency_s, 6), "onednn": round(timing.latency_s, 6)}
    tolerance = 4 * torch.finfo(dtype).eps
    if err > tolerance:
        return {"kernel": "eager", "reason": f"oneDNN's result differs by {err:.2g} (more than {tolerance:.2g})",
                "seconds": seconds}
    return {"kernel": "onednn" if ratio > TIE else "eager",
            "reason": f"Linear+ReLU pass at the MLP's shapes, eager torch {ratio:.2f}x oneDNN's time, measured here",
            "seconds": seconds}


def _qlinear_op():
    return getattr(torch.ops.onednn, "qlinear_pointwise", None) if torch.backends.mkldnn.is_available() else None


@lru_cache(maxsize=None)
def int8_head_kernel() -> str:
    """"onednn" where oneDNN's fp32-output int8 Linear is here and sums full-range codes exactly (255 x 127
    over 64 inputs: clipped where products are summed in int16, as on AVX2 without VNNI), else "fp32"
    (the heads' int8 arithmetic done in fp32). A check of correctness, not of speed, so that which one
    runs never depends on timing."""
    if _qlinear_op() is None:
        return "fp32"
    width = 64
    try:
        with torch.inference_mode():
            codes = torch.full((4, width), 255, dtype=torch.uint8)
            packed = int8_head_pack(torch.full((8, width), 127, dtype=torch.int8))
            y = int8_head_linear(codes, 1.0 / 255, 0, packed, torch.full((8,), 1.0 / 127),
                                 torch.zeros(8, dtype=torch.long), None)
    except RuntimeError:
        return "fp32"
    return "onednn" if bool(torch.isfinite(y).all() and (y - width).abs().max() <= 1e-3 * width) else "fp32"


def int8_head_pack(weight_codes: torch.Tensor) -> torch.Tensor:
    """int8 weight codes (out, in) prepacked for `int8_head_linear`."""
    return torch.ops.onednn.qlinear_prepack(weight_codes, None)


def int8_head_linear(codes: torch.Tensor, scale: float, zero_point: int, packed: torch.Tensor,
                     weight_scales: torch.Tensor, weight_zeros: torch.Tensor, bias: torch.Tensor | None
                     ) -> torch.Tensor:
    """oneDNN's int8 Linear: uint8 `codes` (with their scale and zero point) times prepacked int8 weights
    (per-channel scales), plus an fp32 bias, to fp32; only where `int8_head_kernel()` is "onednn"."""
    return _qlinear_op()(codes, scale, zero_point, packed, weight_scales, weight_zeros, bias, 1.0, 0,
                         torch.float32, "none", [], "")


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
