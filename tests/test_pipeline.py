"""Compressor pipelines: `a:p+b:q` runs registered compressors in order."""

from __future__ import annotations

import pytest
import torch

from nerf_eval.compress import get_compressor
from nerf_eval.compress.base import FunctionCompressor, Registry
from nerf_eval.compress.cast import CastNetwork
from nerf_eval.compress.pipeline import Pipeline, combined_gates
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair, NeRF, NeRFConfig
from nerf_eval.render import Rays

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)


@pytest.fixture
def pair() -> ModelPair:
    return ModelPair.create(TINY, seed=0).eval()


@pytest.fixture
def rays() -> Rays:
    g = torch.Generator().manual_seed(0)
    o = torch.randn(16, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, 4.0])
    return Rays.from_od(o, torch.tensor([0.0, 0.0, -1.0]).expand(16, 3), 2.0, 6.0)


def recording_registry(log: list) -> Registry:
    """A registry of compressors that note (name, input pair, calibration) and tag the pair's meta."""
    reg = Registry()
    for name, gates in [("a", {"psnr_drop": 0.5, "ssim_drop": 0.01}), ("b", {"psnr_drop": 0.25}), ("c", {})]:
        def fn(p, cal, n=name):
            log.append((n, p, cal))
            return ModelPair(p.coarse, p.fine, p.config, {**p.meta, "trail": p.meta.get("trail", "") + n})
        reg.register(name, lambda _param, n=name, f=fn, g=gates: FunctionCompressor(n, f, g))
    return reg


def test_stages_run_in_order_on_the_previous_output_with_the_same_calibration(pair, rays):
    log: list = []
    reg = recording_registry(log)
    out = reg.get("b+a+c").compress(pair, rays)
    assert out.meta["trail"] == "bac"
    assert [n for n, _, _ in log] == ["b", "a", "c"]
    assert log[0][1] is pair and log[1][1].meta["trail"] == "b"
    assert all(cal is rays for _, _, cal in log)


def test_name_and_gates_of_a_chain(pair):
    reg = recording_registry([])
    chain = reg.get("a+b")
    assert isinstance(chain, Pipeline) and chain.name == "a+b"
    assert chain.gates == {"psnr_drop": 0.75}  # ssim_drop is ungated in b, so the chain leaves it ungated
    assert reg.get("a+c").gates == {}
    assert reg.get("pipeline:a+b").name == "a+b"
    assert get_compressor("pipeline:fp16").name == "fp16"
    assert combined_gates([FunctionCompressor("x", lambda p, c: p, {"speedup": 2.0})]) == {}


def test_prune_then_cast_through_the_global_registry(pair, rays):
    comp = get_compressor("prune-activation:0.5:round=1+bf16")
    assert comp.name == "prune-activation:0.5:round=1+bf16"
    out = comp.compress(pair, rays)
    assert isinstance(out.coarse, CastNetwork) and isinstance(out.coarse.net, NeRF)
    assert out.coarse.net.config.widths == (16, 16, 16)
    assert out.coarse.net.pts_linears[0].weight.dtype == torch.bfloat16
    assert out.meta["pruning"]["ratio"] == 0.5
    assert isinstance(pair.coarse, NeRF) and pair.coarse.config.widths == (32, 32, 32)


def test_gate_of_prune_then_cast_adds_the_drops():
    assert get_compressor("prune-activation:0.3+bf16").gates == {"psnr_drop": pytest.approx(1.1)}


def test_a_stage_that_needs_a_float_model_names_itself(pair, rays):
    with pytest.raises(CompressorError, match=r"bf16\+prune-activation:0.3: stage prune-activation:0.3: .*not a NeRF"):
        get_compressor("bf16+prune-activation:0.3").compress(pair, rays)


@pytest.mark.parametrize("spec, message", [
    ("fp16++bf16", r"joined by '\+'"),
    ("+fp16", r"joined by '\+'"),
    ("pipeline:", r"joined by '\+'"),
    ("fp16+nonsense", "nonsense: unknown compressor"),
    ("fp16+pipeline:bf16", "cannot itself be a pipeline"),
    ("fp16+prune-activation:2", r"ratio must be in \[0, 1\)"),
])
def test_bad_chains_give_one_line_errors(spec, message):
    with pytest.raises(CompressorError, match=message) as err:
        get_compressor(spec)
    assert "\n" not in str(err.value)


def test_per_network_precisions_compose(pair, rays):
    out = get_compressor("int8-ptq-fine:16+bf16:coarse").compress(pair, rays)
    assert isinstance(out.coarse, CastNetwork) and out.coarse.dtype == torch.bfloat16
    assert isinstance(out.fine, torch.fx.GraphModule)
    only_fine = get_compressor("bf16:fine").compress(pair, rays)
    assert isinstance(only_fine.coarse, NeRF) and isinstance(only_fine.fine, CastNetwork)


def test_casting_an_already_quantized_network_is_refused(pair, rays):
    with pytest.raises(CompressorError, match="only float NeRF networks can be cast") as err:
        get_compressor("int8-ptq-both:16+bf16").compress(pair, rays)
    assert "\n" not in str(err.value)
