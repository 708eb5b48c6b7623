"""MLP throughput against the machine's GEMM rate per precision, measured in the same process.

The render time of a NeRF is dominated by the MLP; this tells how close the MLP gets to the GEMM peak
of the CPU it runs on, counts the useful FLOPs of any network, and gives points/s for any network.
`nerf_eval.roofline` builds its report on these.
"""

from __future__ import annotations

import statistics
import time
import warnings

import torch
from torch import nn

from nerf_eval.hardware import int8_engine_probe, is_slow_dtype, quantized_engine
from nerf_eval.model import NeRF, NeRFConfig


def mlp_flops_per_point(config: NeRFConfig) -> int:
    """Multiply-add FLOPs (2 per MAC) of one forward pass of the MLP for one point."""
    return network_flops_per_point(NeRF(config))


def median_time(fn, repeats: int) -> float:
    """Median wall time (s) of `fn()` over `repeats` calls, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gemm_rate(dtype: str, rows: int = 65536, width: int = 256, repeats: int = 3) -> float:
    """GFLOP/s of a (rows x width) @ (width x width) product in `dtype` (int8: the int8 engine's Linear).

    An emulated half dtype (hundreds of times slower on some CPUs) is timed on 1/16 of the rows."""
    if dtype in ("bf16", "fp16") and is_slow_dtype(getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[dtype])):
        rows //= 16
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(rows, width, generator=gen), torch.randn(width, width, generator=gen)
    with torch.inference_mode():
        if dtype == "int8":
            with warnings.catch_warnings(), quantized_engine(int8_engine_probe()["engine"]):
                warnings.simplefilter("ignore")
                qa = torch.quantize_per_tensor(a.abs(), 0.05, 0, torch.quint8)
                w = torch.quantize_per_channel(b, torch.full((width,), 0.05), torch.zeros(width, dtype=torch.long), 0,
                                               torch.qint8)
                packed = torch.ops.quantized.linear_prepack(w, None)
                seconds = median_time(lambda: torch.ops.quantized.linear(qa, packed, 1.0, 0), repeats)
        else:
            t = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
            a, b = a.to(t), b.to(t)
            seconds = median_time(lambda: a @ b, repeats)
    return 2.0 * rows * width * width / seconds / 1e9


def network_flops_per_point(net: nn.Module) -> int:
    """Multiply-add FLOPs (2 per MAC) of one point through every linear layer of `net`, whatever its kind
    (float, pruned, cast, quantized or weight-only: each keeps in_features/out_features); a layer's own
    submodules (a quantized layer's packed parameters) are not counted again."""
    i, o = getattr(net, "in_features", None), getattr(net, "out_features", None)
    if isinstance(i, int) and isinstance(o, int):
        return 2 * i * o
    return sum(network_flops_per_point(child) for child in net.children())


def mlp_points_per_second(net: nn.Module, config: NeRFConfig, n_points: int = 65536, repeats: int = 5) -> float:
    """Points/s of `net` on random encoded inputs of the width `config` implies."""
    x = torch.randn(n_points, config.input_ch + config.input_ch_views)
    with torch.inference_mode():
        t = median_time(lambda: net(x), repeats)
    return n_points / t
