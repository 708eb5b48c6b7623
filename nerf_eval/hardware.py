"""What this CPU computes fast, and exactly, in reduced precision.

- Half-precision matmuls are native on some CPUs (AVX-512 BF16, AMX) and emulated, 5 to 50 times slower
  than fp32, on others (fp16 without AVX-512 FP16, bf16 on AVX2 only). Rendering or training in an
  emulated dtype turns a minute into an hour, so callers check before they choose bf16 or fp16.
- int8 GEMMs of the x86 quantized engine multiply uint8 activations by int8 weights. With VNNI the
  products are summed in int32; without it (AVX2) pairs of products are summed in int16 with saturation,
  so full-range activations (255) times large weights (127) clip. There, activations must use 7 bits.

- torch has two int8 engines on x86: `x86` (fbgemm; VNNI at best) and `onednn` (which reaches AMX int8
  tiles on Xeons that have them, 2-3x fbgemm there). Which is faster depends on the CPU, so the engine
  used to pack int8 weights is the faster one measured here (`int8_engine`), among those whose
  results are right.

Every check is a measurement, not a lookup of CPU flags, made once per process in well under a second.
`NERF_INT8_ENGINE=x86|onednn` pins the engine (for reproducing a figure measured with one).
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import torch
from torch import nn
from torch.ao.nn.quantized.modules.linear import LinearPackedParams

from nerf_eval.measure.latency import PairedProtocol, time_pair, time_paired

if TYPE_CHECKING:  # only a type here: nerf_eval.model imports this module (copy_module)
    from nerf_eval.model import ModelPair

# Native half matmuls run at 1-4x the fp32 rate; emulated ones at ~0.2x (fp16 on AVX-512 BF16 CPUs) or
# ~0.02x (bf16 and fp16 on AVX2). Half the fp32 rate sits well clear of both, so the verdict is stable.
SLOW_RATIO = 0.5
HALF_DTYPES = (torch.bfloat16, torch.float16)


@lru_cache(maxsize=None)
def matmul_speed_ratio(dtype: torch.dtype, rows: int = 512, width: int = 256, rounds: int = 9) -> float:
    """GEMM throughput of `dtype` relative to fp32 on this CPU (above 1: faster than fp32): the paired
    speed-up of `dtype`'s product over fp32's on the same operands (`nerf_eval.measure.latency`: each
    round times both back to back, the order alternating; the median of the per-round ratios), so that
    load from other processes (which once flipped the verdict of a best-of-3 timed apart) cancels out."""
    if dtype == torch.float32:
        return 1.0
    a, b = torch.randn(rows, width), torch.randn(width, width)
    ah, bh = a.to(dtype), b.to(dtype)
    protocol = PairedProtocol(rounds=rounds, warmup=2, order="alternate", pairing="adjacent")
    with torch.inference_mode():  # the warm-up calls build the half-precision kernel
        return time_pair(lambda: a @ b, lambda: ah @ bh, protocol).speedup


def is_slow_dtype(dtype: torch.dtype) -> bool:
    """True when this CPU runs `dtype` matmuls below SLOW_RATIO of the fp32 rate (emulated)."""
    return dtype in HALF_DTYPES and matmul_speed_ratio(dtype) < SLOW_RATIO


INT8_ENGINES = ("onednn", "x86")  # the candidates; on a tie (within 5%) the earlier one is kept
ENGINE_ENV = "NERF_INT8_ENGINE"


@contextlib.contextmanager
def quantized_engine(name: str) -> Iterator[None]:
    """Make `name` torch's quantized engine for the block: weights packed inside use its kernels."""
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = old


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Run the block on `n` torch intra-op threads (n <= 0: leave the setting as it is).

    One thread is what steady timing on a shared machine needs: with several, every parallel region
    waits for its slowest thread, so one thread preempted by another process stalls the whole call, a
    noise of single calls that pairing cannot cancel. Loops of tiny ops also run faster on one thread
    beside a busy CPU (OpenMP barriers)."""
    previous = torch.get_num_threads()
    if n > 0 and n != previous:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _saturates(engine: str) -> bool:
    with quantized_engine(engine), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        width = 64
        x = torch.quantize_per_tensor(torch.ones(4, width), 1.0 / 255, 0, torch.quint8)  # every code 255
        w = torch.quantize_per_tensor(torch.ones(8, width), 1.0 / 127, 0, torch.qint8)  # every code 127
        y = torch.ops.quantized.linear(x, torch.ops.quantized.linear_prepack(w, None), 1.0, 0)
        return bool((y.dequantize() - width).abs().max() > 1.0)


def _int8_chain_seconds(engines: list[str], rows: int = 4096, width: int = 256, depth: int = 4,
                        rounds: int = 5) -> dict[str, float]:
    """Median time of a chain of int8 Linear+ReLU layers at the MLP's width, per engine (two or more),
    timed interleaved (`nerf_eval.measure.latency`, the order alternating from round to round) so that a
    change of load on the machine falls on all alike."""
    gen = torch.Generator().manual_seed(0)
    weights = [torch.quantize_per_channel(torch.randn(width, width, generator=gen) * 0.05, torch.full((width,), 0.002),
                                          torch.zeros(width, dtype=torch.long), 0, torch.qint8) for _ in range(depth)]
    x = torch.quantize_per_tensor(torch.rand(rows, width, generator=gen), 1.0 / 255, 0, torch.quint8)
    packed = {}
    for e in engines:
        with quantized_engine(e):
            packed[e] = [torch.ops.quantized.linear_prepack(w, None) for w in weights]

    def chain(e: str):
        def run() -> torch.Tensor:
            y = x
            for p in packed[e]:
                y = torch.ops.quantized.linear_relu(y, p, 0.05, 0)
            return y
        return run

    first, *others = engines
    with torch.inference_mode():
        timings = time_paired(chain(first), {e: chain(e) for e in others},
                              PairedProtocol(rounds=rounds, order="alternate"))
    return {first: timings[others[0]].reference_latency_s, **{e: t.latency_s for e, t in timings.items()}}


@lru_cache(maxsize=None)
def int8_engine_probe() -> dict:
    """The int8 engine chosen for this process and why: {"engine", "reason", "seconds": {engine: s}}."""
    supported = [e for e in INT8_ENGINES if e in torch.backends.quantized.supported_engines]
    pinned = os.environ.get(ENGINE_ENV, "").strip()
    if pinned:
        if pinned not in supported:
            from nerf_eval.errors import NerfEvalError

            raise NerfEvalError(f"{ENGINE_ENV}={pinned}: not an int8 engine of this torch (has {supported})")
        return {"engine": pinned, "reason": f"pinned by {ENGINE_ENV}", "seconds": {}}
    if not supported:
        return {"engine": torch.backends.quantized.engine, "reason": "torch's default (no x86 engine)", "seconds": {}}
    if len(supported) == 1:
        return {"engine": supported[0], "reason": "the only int8 engine here", "seconds": {}}
    with warnings.catch_warnings():  # torch warns that quantized tensors are deprecated at each creation
        warnings.simplefilter("ignore")
        seconds = _int8_chain_seconds(supported)
    best = min(supported, key=seconds.get)
    if seconds[supported[0]] <= 1.05 * seconds[best]:
        best = supported[0]
    return {"engine": best, "reason": "fastest int8 Linear+ReLU chain at the MLP's width, measured here",
            "seconds": {e: round(s, 6) for e, s in seconds.items()}}


def int8_engine() -> str:
    """The quantized engine static and dynamic int8 networks are packed with on this machine."""
    return int8_engine_probe()["engine"]


def copy_module(net: nn.Module) -> nn.Module:
    """`copy.deepcopy(net)` with its int8 weights packed for this machine's int8 engine (`int8_engine`).

    torch re-packs quantized weights when a module holding them is copied, with whatever quantized engine
    is current (`x86` unless set), not the one they were packed with: a copied int8 network then ran on
    fbgemm, at about half the speed of the original on an AMX Xeon (`reports/linear-kernels/int8-copy-amx.log`).
    Loading a saved int8 network re-packs with this machine's engine too (`int8_packing`)."""
    if not any(isinstance(m, LinearPackedParams) for m in net.modules()):
        return copy.deepcopy(net)
    with quantized_engine(int8_engine()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that quantized tensors are deprecated at each creation
        return copy.deepcopy(net)


@lru_cache(maxsize=None)
def int8_saturates(engine: str | None = None) -> bool:
    """True when `engine`'s (default: this machine's) int8 linear clips full-range uint8 x int8 sums (no VNNI)."""
    return _saturates(engine or int8_engine())


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows; for records of where a
    figure was measured."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512_fp16", "amx_tile", "amx_bf16",
             "amx_int8")


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> list[str]:
    """The CPU flags that decide the fast paths (Linux /proc/cpuinfo; empty elsewhere)."""
    flags = (_cpuinfo_field("flags") or "").split()
    return [f for f in CPU_FLAGS if f in flags]


def machine_summary() -> str:
    """One line saying where a figure was measured: CPU model name, family and model (a cloud CPU's name
    alone, "AMD EPYC", does not tell Zen 4 from Zen 5), the flags of its fast paths, torch and its threads."""
    family, model = _cpuinfo_field("cpu family"), _cpuinfo_field("model")
    ident = f" (family {family} model {model})" if family and model else ""
    flags = " ".join(cpu_flags()) or "no avx2"
    return f"{cpu_name()}{ident}, {flags}, torch {torch.__version__}, {torch.get_num_threads()} threads"


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
