"""MLP throughput against the machine's fp32 GEMM rate, measured in the same process.

The render time of a NeRF is dominated by the MLP; this tells how close the eager MLP gets to the
GEMM peak of the CPU it runs on (the goal is >= 70%), and gives points/s for any network.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from nerf_eval.model import NeRF, NeRFConfig


def mlp_flops_per_point(config: NeRFConfig) -> int:
    """Multiply-add FLOPs (2 per MAC) of one forward pass of the MLP for one point."""
    net = NeRF(config)
    return sum(2 * m.in_features * m.out_features for m in net.modules() if isinstance(m, nn.Linear))


def median_time(fn, repeats: int) -> float:
    """Median wall time (s) of `fn()` over `repeats` calls, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gemm_gflops(n: int = 65536, k: int = 256, m: int = 256, repeats: int = 5) -> float:
    """fp32 GEMM rate (GFLOP/s) for the MLP's typical shape (points x 256 @ 256 x 256)."""
    a, b = torch.randn(n, k), torch.randn(k, m)
    t = median_time(lambda: torch.mm(a, b), repeats)
    return 2.0 * n * k * m / t / 1e9


def mlp_points_per_second(net: nn.Module, config: NeRFConfig, n_points: int = 65536, repeats: int = 5) -> float:
    """Points/s of `net` on random encoded inputs of the width `config` implies."""
    x = torch.randn(n_points, config.input_ch + config.input_ch_views)
    with torch.inference_mode():
        t = median_time(lambda: net(x), repeats)
    return n_points / t
