"""The half-precision Linear kernel: chosen by measurement, the same results either way, never under autograd
or FX tracing, and recorded with the machine."""

from __future__ import annotations

import pytest
import torch

from nerf_eval import kernels
from nerf_eval.compress import get_compressor
from nerf_eval.errors import NerfEvalError
from nerf_eval.machine import machine_record
from nerf_eval.measure.latency import summarize
from nerf_eval.model import ModelPair, NeRF, NeRFConfig

SMALL = NeRFConfig(depth=4, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)
needs_fused = pytest.mark.skipif(kernels._fused_op() is None, reason="this torch has no oneDNN fused linear")


@pytest.fixture
def pin(monkeypatch):
    """Pin the kernel through the environment variable, as a user would, for the rest of the test."""
    def set_kernel(name: str) -> None:
        monkeypatch.setenv(kernels.KERNEL_ENV, name)
        kernels.linear_kernel_probe.cache_clear()

    yield set_kernel
    monkeypatch.delenv(kernels.KERNEL_ENV, raising=False)
    kernels.linear_kernel_probe.cache_clear()


def _counting_fused(monkeypatch) -> list[int]:
    calls = [0]
    real = kernels._fused_op()

    def counted(*args):
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(kernels, "_fused_op", lambda: counted)
    return calls


@needs_fused
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_and_eager_kernels_give_the_same_network_output(pin, monkeypatch, dtype):
    torch.manual_seed(0)
    net = NeRF(SMALL).to(dtype).eval()
    x = torch.randn(300, SMALL.input_ch + SMALL.input_ch_views).to(dtype)
    pin("eager")
    with torch.inference_mode():
        eager = net(x)
    pin("onednn")
    calls = _counting_fused(monkeypatch)
    with torch.inference_mode():
        fused = net(x)
    # every Linear of the network went through the fused kernel: 4 trunk, alpha, feature, view, rgb
    assert calls[0] == SMALL.depth + 4
    scale = eager.float().abs().max()
    assert (fused.float() - eager.float()).abs().max() <= 4 * torch.finfo(dtype).eps * scale


@needs_fused
def test_gradients_fp32_autocast_and_fx_tracing_take_the_eager_path(pin, monkeypatch):
    pin("onednn")
    calls = _counting_fused(monkeypatch)
    torch.manual_seed(0)
    net = NeRF(SMALL).to(torch.bfloat16)
    x = torch.randn(64, SMALL.input_ch + SMALL.input_ch_views).to(torch.bfloat16)
    net(x).float().sum().backward()  # the fused op has no autograd formula
    assert net.pts_linears[0].weight.grad is not None
    with torch.inference_mode():
        NeRF(SMALL).eval()(x.float())  # fp32: the baseline stays on torch's kernels
        with torch.autocast("cpu", dtype=torch.bfloat16):
            NeRF(SMALL).eval()(x.float())
    with torch.no_grad():
        graph = torch.fx.symbolic_trace(NeRF(SMALL)).graph  # what static int8 quantizes
    assert calls[0] == 0
    assert sum(n.op == "call_module" for n in graph.nodes) == SMALL.depth + 4


def test_fp32_stays_eager_and_a_bad_pin_is_one_clear_error(pin):
    assert kernels.linear_kernel_probe(torch.float32)["kernel"] == "eager"
    pin("fast")
    with pytest.raises(NerfEvalError, match=f"{kernels.KERNEL_ENV}=fast: not a Linear kernel"):
        kernels.linear_kernel_probe(torch.bfloat16)


def test_an_emulated_dtype_or_a_differing_result_keeps_eager_torch(pin, monkeypatch):  # pin: clears the probe after
    kernels.linear_kernel_probe.cache_clear()
    monkeypatch.setattr(kernels, "is_slow_dtype", lambda dtype: True)
    choice = kernels.linear_kernel_probe(torch.bfloat16)
    assert choice["kernel"] == "eager" and "emulates" in choice["reason"] and not choice["seconds"]
    kernels.linear_kernel_probe.cache_clear()
    monkeypatch.setattr(kernels, "is_slow_dtype", lambda dtype: False)
    monkeypatch.setattr(kernels, "_fused_op", lambda: object())
    monkeypatch.setattr(kernels, "_probe", lambda dtype: (summarize("onednn", [1.0], [2.0]), 0.5))
    choice = kernels.linear_kernel_probe(torch.bfloat16)  # twice as fast, but not the same result
    assert choice["kernel"] == "eager" and "differs by 0.5" in choice["reason"]
    kernels.linear_kernel_probe.cache_clear()
    monkeypatch.setattr(kernels, "_probe", lambda dtype: (summarize("onednn", [1.0], [1.05]), 0.0))
    assert kernels.linear_kernel_probe(torch.bfloat16)["kernel"] == "eager"  # within the tie margin
    kernels.linear_kernel_probe.cache_clear()


def test_probe_is_a_measurement_or_says_why_not():
    for name, choice in kernels.linear_kernels().items():
        assert choice["kernel"] in kernels.KERNELS and choice["reason"], name
        if choice["seconds"]:  # measured: both kernels timed, and the choice follows the paired ratio
            assert set(choice["seconds"]) == set(kernels.KERNELS) and min(choice["seconds"].values()) > 0


def test_a_cast_pair_renders_alike_with_either_kernel(pin):
    torch.manual_seed(0)
    pair = ModelPair.create(SMALL)
    cast = get_compressor("bf16").compress(pair, None)
    x = torch.randn(200, SMALL.input_ch + SMALL.input_ch_views)
    outs = []
    for k in kernels.KERNELS if kernels._fused_op() is not None else ("eager",):
        pin(k)
        with torch.inference_mode():
            outs.append(cast.fine(x))
    assert all(torch.allclose(o, outs[0], rtol=0.02, atol=1e-3) for o in outs)


def test_machine_record_names_the_kernels():
    m = machine_record()
    assert set(m["linear_kernels"]) == {"bf16", "fp16"} and set(m["linear_kernel_reasons"]) == {"bf16", "fp16"}
    assert m["int8_engine"] and m["summary"] and m["threads"] >= 1
    assert m["int8_head_kernel"] in ("onednn", "fp32")


def test_int8_head_kernel_is_a_correctness_check_that_falls_back_to_fp32(monkeypatch):
    assert kernels.int8_head_kernel() in ("onednn", "fp32")
    kernels.int8_head_kernel.cache_clear()
    try:
        monkeypatch.setattr(kernels, "_qlinear_op", lambda: None)
        assert kernels.int8_head_kernel() == "fp32"
        kernels.int8_head_kernel.cache_clear()
        # an op that sums in int16 and clips (32767 * scales instead of 64): refused, whatever its speed
        monkeypatch.setattr(kernels, "_qlinear_op",
                            lambda: lambda *args: torch.full((4, 8), 32767 / 255 / 127, dtype=torch.float32))
        assert kernels.int8_head_kernel() == "fp32"
    finally:
        kernels.int8_head_kernel.cache_clear()
