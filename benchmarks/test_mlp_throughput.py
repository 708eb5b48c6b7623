"""The fp32 MLP's throughput and its share of the fp32 GEMM rate measured in the same run."""

import warnings

import pytest

from nerf_eval.model import NeRF, NeRFConfig
from nerf_eval.throughput import gemm_rate, mlp_flops_per_point, mlp_points_per_second


@pytest.mark.benchmark(group="mlp-throughput")
def test_mlp_share_of_gemm_rate(benchmark):
    config = NeRFConfig()
    net = NeRF(config).eval()
    n_points = 16384
    gemm = gemm_rate("fp32", rows=n_points)
    pts_s = benchmark.pedantic(mlp_points_per_second, args=(net, config, n_points, 3), rounds=3, iterations=1)
    mlp_gflops = pts_s * mlp_flops_per_point(config) / 1e9
    share = mlp_gflops / gemm
    benchmark.extra_info.update({"points_per_s": round(pts_s), "mlp_gflops": round(mlp_gflops, 1),
                                 "gemm_gflops": round(gemm, 1), "share_of_gemm": round(share, 3)})
    print(f"\nMLP {pts_s:,.0f} points/s = {mlp_gflops:.1f} GFLOP/s, {100 * share:.0f}% of fp32 GEMM "
          f"{gemm:.1f} GFLOP/s (goal >= 70%)")
    assert mlp_flops_per_point(config) == 1_186_816  # the vanilla MLP: 1.187 MFLOP per point
    if share < 0.7:
        warnings.warn(f"MLP reaches {100 * share:.0f}% of the fp32 GEMM rate (goal 70%)", stacklevel=1)
