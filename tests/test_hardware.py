"""The half-precision speed check: measured against fp32, and what the callers do with it."""

from __future__ import annotations

import types

import pytest
import torch

import nerf_eval.hardware as hw
from nerf_eval.compress import get_compressor
from nerf_eval.errors import NerfEvalError
from nerf_eval.model import ModelPair, NeRFConfig

TINY = NeRFConfig(depth=2, width=16, skips=(), multires=2, multires_views=1, view_width=8)


def test_fp32_is_the_reference_and_never_slow():
    assert hw.matmul_speed_ratio(torch.float32) == 1.0
    assert not hw.is_slow_dtype(torch.float32)


def test_half_ratio_is_a_positive_measurement():
    ratio = hw.matmul_speed_ratio(torch.bfloat16)
    assert ratio > 0 and hw.is_slow_dtype(torch.bfloat16) == (ratio < hw.SLOW_RATIO)


def test_slow_dtypes_of_a_pair_follow_the_measured_rate(monkeypatch):
    torch.manual_seed(0)
    pair = ModelPair.create(TINY)
    cast = get_compressor("bf16").compress(pair, None)
    monkeypatch.setattr(hw, "matmul_speed_ratio", lambda dtype: 0.02)
    assert hw.slow_dtypes(cast) == [torch.bfloat16] and hw.slow_dtypes(pair) == []
    assert "bfloat16 at 0.02x the fp32 GEMM rate" in hw.slow_dtype_note([torch.bfloat16])
    monkeypatch.setattr(hw, "matmul_speed_ratio", lambda dtype: 2.5)
    assert hw.slow_dtypes(cast) == []


def test_int8_saturation_probe_matches_a_full_range_product():
    """The probe's verdict is what an x86-engine int8 linear does with full-range codes on this CPU."""
    assert isinstance(hw.int8_saturates(), bool)
    assert hw.int8_saturates() == hw.int8_saturates.__wrapped__()


@pytest.mark.parametrize("reduce_range", [False, True])
def test_static_int8_records_its_activation_range_and_reloads_it(reduce_range, tmp_path):
    from nerf_eval.compress.quantize import STATIC_INT8_META, static_int8_network
    from nerf_eval.compress.saved import load_compressed, save_compressed

    pair = ModelPair.create(TINY)
    inputs = torch.randn(256, TINY.input_ch + TINY.input_ch_views)
    nets = {k: static_int8_network(v, inputs, reduce_range=reduce_range) for k, v in pair.networks().items()}
    assert nets["coarse"].meta[STATIC_INT8_META]["reduce_range"] is reduce_range
    q = ModelPair(nets["coarse"], nets["fine"], TINY)
    save_compressed(tmp_path / "q.pt", q, "int8-ptq-both")
    back = load_compressed(tmp_path / "q.pt")
    assert back.coarse.meta[STATIC_INT8_META]["reduce_range"] is reduce_range
    with torch.inference_mode():
        assert torch.equal(back.coarse(inputs), nets["coarse"](inputs))


def test_static_int8_uses_seven_bit_activations_where_int8_saturates(monkeypatch):
    from nerf_eval.compress.quantize import static

    pair = ModelPair.create(TINY)
    inputs = torch.randn(64, TINY.input_ch + TINY.input_ch_views)
    for verdict in (True, False):
        monkeypatch.setattr(static, "int8_saturates", lambda engine=None, v=verdict: v)
        net = static.static_int8_network(pair.coarse, inputs)
        assert net.meta[static.STATIC_INT8_META]["reduce_range"] is verdict


def test_cpu_name_reads_the_model_name_and_falls_back_to_platform(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n")
    monkeypatch.setattr(hw, "Path", lambda _: info)
    assert hw.cpu_name() == "AMD EPYC 9R14 96-Core Processor"
    monkeypatch.setattr(hw, "Path", lambda _: tmp_path / "missing")
    monkeypatch.setattr(hw.platform, "processor", lambda: "")
    assert hw.cpu_name() == hw.platform.machine()


def test_machine_summary_tells_cpu_generations_apart(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n"
                    "flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    monkeypatch.setattr(hw, "Path", lambda _: info)
    line = hw.machine_summary()
    assert line.startswith("AMD EPYC (family 26 model 2), avx2 avx512f avx512_bf16 avx512_vnni, torch ")
    assert line.endswith(f"{torch.get_num_threads()} threads")


def test_int8_engine_is_measured_among_the_supported_ones_or_pinned(monkeypatch):
    probe = hw.int8_engine_probe()
    assert probe["engine"] in torch.backends.quantized.supported_engines
    if len(probe["seconds"]) > 1:  # measured: the choice is the fastest, or the preferred one within 5%
        best = min(probe["seconds"], key=probe["seconds"].get)
        assert probe["seconds"][probe["engine"]] <= 1.05 * probe["seconds"][best]
    hw.int8_engine_probe.cache_clear()
    monkeypatch.setenv(hw.ENGINE_ENV, "x86")
    try:
        assert hw.int8_engine() == "x86" and "pinned" in hw.int8_engine_probe()["reason"]
        hw.int8_engine_probe.cache_clear()
        monkeypatch.setenv(hw.ENGINE_ENV, "qnnpack-typo")
        with pytest.raises(NerfEvalError, match="NERF_INT8_ENGINE=qnnpack-typo: not an int8 engine"):
            hw.int8_engine_probe()
    finally:
        hw.int8_engine_probe.cache_clear()


@pytest.mark.parametrize("engine", [e for e in hw.INT8_ENGINES if e in torch.backends.quantized.supported_engines])
def test_static_int8_records_its_engine_and_both_engines_agree(engine):
    from nerf_eval.compress.quantize import STATIC_INT8_META, static_int8_network

    pair = ModelPair.create(TINY, seed=3)
    inputs = torch.randn(512, TINY.input_ch + TINY.input_ch_views)
    net = static_int8_network(pair.coarse, inputs, engine=engine, reduce_range=True)
    assert net.meta[STATIC_INT8_META]["engine"] == engine
    ref = static_int8_network(pair.coarse, inputs, engine="x86", reduce_range=True)
    with torch.inference_mode():
        out, want, fp32 = net(inputs), ref(inputs), pair.coarse(inputs)
    # the same integer arithmetic on both engines, up to requantization rounding; far inside int8's own error
    assert (out - want).abs().max() <= 0.05 * (want - fp32).abs().max() + 1e-6


def test_intra_op_threads_sets_the_count_for_the_block_and_restores_it():
    from nerf_eval.hardware import intra_op_threads

    before = torch.get_num_threads()
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with intra_op_threads(0):  # 0: as torch is set
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), intra_op_threads(1):
        raise RuntimeError("restored on the way out")
    assert torch.get_num_threads() == before


def test_copies_of_int8_networks_are_packed_for_this_machines_engine(monkeypatch):
    """torch re-packs quantized weights when copying, with the engine current then; copy_module (and so
    ModelPair.copy_with, what accelerators composed after int8 use) copies under this machine's engine."""
    torch.manual_seed(0)
    pair = ModelPair.create(TINY)
    float_pair = get_compressor("fp32").compress(pair, None)  # copied plainly
    engines = []
    real_deepcopy = hw.copy.deepcopy

    def spy(obj, memo=None):  # records the engine current when copy_module copies
        engines.append(torch.backends.quantized.engine)
        return real_deepcopy(obj, memo)

    from nerf_eval.compress.quantize.static import static_int8_network
    net = static_int8_network(pair.fine, torch.randn(64, TINY.input_ch + TINY.input_ch_views))
    supported = torch.backends.quantized.supported_engines
    other = next((e for e in ("x86", "onednn") if e in supported and e != hw.int8_engine()), None)
    if other is None:
        pytest.skip("one int8 engine only: nothing to switch between")
    monkeypatch.setattr(hw, "copy", types.SimpleNamespace(deepcopy=spy))
    with hw.quantized_engine(other):
        copied = hw.copy_module(net)
        hw.copy_module(float_pair.fine)
        assert torch.backends.quantized.engine == other  # restored
    assert engines == [hw.int8_engine(), other]
    x = torch.randn(8, TINY.input_ch + TINY.input_ch_views)
    with torch.inference_mode():
        torch.testing.assert_close(copied(x), net(x), rtol=0, atol=1e-5)
