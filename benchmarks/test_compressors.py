"""fp32 vs every registered compressor: render latency (pytest-benchmark), size and quality gates.

Each test renders the fixed latency batch (full 64+128 samples) under pytest-benchmark, then measures
quality on the held-out views (computed once per compressor and cached) and applies the gates: the
compressor's registered thresholds, --nerf-gate/--nerf-max-psnr-drop, and with --benchmark-compare the
saved run's quality figures.
"""

import pytest


def test_compressor(benchmark, nerf_workbench, nerf_compressed, nerf_evaluator, nerf_gate):
    benchmark.group = f"{nerf_workbench.target.name}: render latency batch"
    benchmark.pedantic(nerf_evaluator.render_batch(nerf_compressed), rounds=nerf_workbench.options.latency_rounds,
                       warmup_rounds=1, iterations=1)
    nerf_gate(nerf_evaluator(nerf_compressed, latency=False))


@pytest.mark.nerf_gate("psnr>=20")
def test_fp32_checkpoint_is_trained(nerf_pair, nerf_evaluator, nerf_gate):
    """The shipped checkpoint itself renders the held-out views well (guards against a broken file)."""
    nerf_gate(nerf_evaluator(nerf_pair, name="fp32-checkpoint", latency=False))
