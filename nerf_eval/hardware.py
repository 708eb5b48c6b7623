"""What this CPU computes fast, and exactly, in reduced precision.

- Half-precision matmuls are native on some CPUs (AVX-512 BF16, AMX) and emulated, 5 to 50 times slower
  than fp32, on others (fp16 without AVX-512 FP16, bf16 on AVX2 only). Rendering or training in an
  emulated dtype turns a minute into an hour, so callers check before they choose bf16 or fp16.
- int8 GEMMs of the x86 quantized engine multiply uint8 activations by int8 weights. With VNNI the
  products are summed in int32; without it (AVX2) pairs of products are summed in int16 with saturation,
  so full-range activations (255) times large weights (127) clip. There, activations must use 7 bits.

Both checks are measurements, not lookups of CPU flags, made once per process in well under a second.
"""

from __future__ import annotations

import platform
import time
from functools import lru_cache
from pathlib import Path

import torch

from nerf_eval.model import ModelPair

# Native half matmuls run at 1-4x the fp32 rate; emulated ones at ~0.2x (fp16 on AVX-512 BF16 CPUs) or
# ~0.02x (bf16 and fp16 on AVX2). Half the fp32 rate sits well clear of both, so the verdict is stable.
SLOW_RATIO = 0.5
HALF_DTYPES = (torch.bfloat16, torch.float16)


def _gemm_seconds(dtype: torch.dtype, rows: int = 512, width: int = 256, trials: int = 3) -> float:
    a = torch.randn(rows, width).to(dtype)
    b = torch.randn(width, width).to(dtype)
    best = float("inf")
    with torch.inference_mode():
        a @ b
        for _ in range(trials):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return best


@lru_cache(maxsize=None)
def matmul_speed_ratio(dtype: torch.dtype) -> float:
    """GEMM throughput of `dtype` relative to fp32 on this CPU (above 1: faster than fp32)."""
    if dtype == torch.float32:
        return 1.0
    return _gemm_seconds(torch.float32) / max(_gemm_seconds(dtype), 1e-9)


def is_slow_dtype(dtype: torch.dtype) -> bool:
    """True when this CPU runs `dtype` matmuls below SLOW_RATIO of the fp32 rate (emulated)."""
    return dtype in HALF_DTYPES and matmul_speed_ratio(dtype) < SLOW_RATIO


@lru_cache(maxsize=None)
def int8_saturates() -> bool:
    """True when this CPU's x86-engine int8 linear clips full-range uint8 x int8 sums (no VNNI)."""
    from nerf_eval.compress.quantize import x86_engine  # quantize imports this module

    with x86_engine():
        width = 64
        x = torch.quantize_per_tensor(torch.ones(4, width), 1.0 / 255, 0, torch.quint8)  # every code 255
        w = torch.quantize_per_tensor(torch.ones(8, width), 1.0 / 127, 0, torch.qint8)  # every code 127
        y = torch.ops.quantized.linear(x, torch.ops.quantized.linear_prepack(w, None), 1.0, 0)
        return bool((y.dequantize() - width).abs().max() > 1.0)


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows; for records of where a
    figure was measured."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 autocast pays off on `device`: False where this CPU emulates bf16 matmuls, or where
    the CUDA device has no bf16 support."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    return not is_slow_dtype(torch.bfloat16)


def slow_dtypes(pair: ModelPair) -> list[torch.dtype]:
    """The emulated half dtypes among the floating-point parameters of `pair`'s networks."""
    found = {p.dtype for net in pair.networks().values() for p in net.parameters() if p.dtype in HALF_DTYPES}
    return sorted((d for d in found if is_slow_dtype(d)), key=str)


def slow_dtype_note(dtypes: list[torch.dtype]) -> str:
    """One line naming the emulated dtypes and how much slower than fp32 they run here."""
    parts = [f"{str(d).removeprefix('torch.')} at {matmul_speed_ratio(d):.2f}x the fp32 GEMM rate" for d in dtypes]
    return "this CPU emulates " + ", ".join(parts) + " (no native half-precision matmul)"
