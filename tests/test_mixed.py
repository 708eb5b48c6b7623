"""Activation-aware mixed precision: per-layer sensitivity, and a plan that meets its fidelity budget."""

from __future__ import annotations

import math

import pytest
import torch

from nerf_eval.compress import get_compressor
from nerf_eval.compress.mixed import (MixedOptions, PlanEvaluator, fidelity_db, int8_candidates, layer_sensitivity,
                                      mixed_pair)
from nerf_eval.compress.quantize import calibration_subset, default_plan, record_network_inputs
from nerf_eval.errors import CompressorError
from nerf_eval.model import NeRFConfig
from nerf_eval.render import render_chunked
from test_quantize import FAST, SMALL, camera_rays, foggy_pair

MICRO = NeRFConfig(depth=2, width=16, skips=(0,), multires=3, multires_views=1, view_width=8)
PROBE = 32


@pytest.fixture(scope="module")
def pair():
    return foggy_pair(MICRO)


@pytest.fixture(scope="module")
def rays():
    return camera_rays(48)


@pytest.fixture(scope="module")
def probe(rays):
    return calibration_subset(rays, PROBE, FAST.seed + 1)


@pytest.fixture(scope="module")
def evaluator(pair, rays, probe):
    inputs = record_network_inputs(pair, calibration_subset(rays, FAST.rays, FAST.seed), SMALL)
    return PlanEvaluator(pair, inputs, probe, SMALL, "minmax")


@pytest.fixture(scope="module")
def all_int8_fidelity(evaluator, pair):
    return evaluator.fidelity({n: default_plan(net) for n, net in pair.networks().items()})


def options(budget: float) -> MixedOptions:
    return MixedOptions(fidelity_db=budget, calibration=FAST, probe_rays=PROBE)


def measured_fidelity(mixed, pair, probe) -> float:
    return fidelity_db(render_chunked(mixed, probe, SMALL)["rgb"], render_chunked(pair, probe, SMALL)["rgb"])


def test_fidelity_is_psnr_against_the_reference():
    ref = torch.zeros(10, 3)
    assert fidelity_db(ref, ref) == math.inf
    assert fidelity_db(ref + 0.1, ref) == pytest.approx(20.0)


def test_every_int8_layer_of_both_networks_gets_a_sensitivity(evaluator, pair):
    sensitivity = layer_sensitivity(evaluator)
    assert set(sensitivity) == set(int8_candidates(pair))
    assert {n for n, _ in sensitivity} == {"coarse", "fine"}
    assert all(v > 0 and not math.isnan(v) for v in sensitivity.values())


def test_a_met_budget_keeps_every_layer_in_int8(pair, rays, probe, all_int8_fidelity):
    out = mixed_pair(pair, rays, options(all_int8_fidelity - 3.0))
    info = out.meta["compression"]
    assert info["kept_fp32"] == []
    assert all(p == default_plan(pair.networks()[n])[layer] for n, plan in info["plans"].items()
               for layer, p in plan.items())
    assert measured_fidelity(out, pair, probe) >= all_int8_fidelity - 3.0


def test_a_tight_budget_moves_the_most_sensitive_layers_to_fp32_and_is_met(pair, rays, probe, all_int8_fidelity):
    budget = all_int8_fidelity + 6.0
    out = mixed_pair(pair, rays, options(budget))
    info = out.meta["compression"]
    assert info["kept_fp32"], "int8 everywhere already met a budget 6 dB above its own fidelity"
    order = sorted(info["sensitivity_db"], key=info["sensitivity_db"].get)
    assert info["kept_fp32"] == order[:len(info["kept_fp32"])]
    assert info["fidelity_db"] >= budget
    assert measured_fidelity(out, pair, probe) == pytest.approx(info["fidelity_db"], abs=1e-3)
    for name in info["kept_fp32"]:
        net, layer = name.split(".", 1)
        assert info["plans"][net][layer] == "fp32"


def test_an_unreachable_int8_budget_leaves_float_networks(pair, rays, probe):
    out = mixed_pair(pair, rays, options(200.0))
    assert measured_fidelity(out, pair, probe) == math.inf
    assert len(out.meta["compression"]["kept_fp32"]) == len(int8_candidates(pair))


@pytest.mark.parametrize("spec", ["mixed:abc", "mixed:-1", "mixed:nan", "mixed:0"])
def test_bad_budgets_are_one_line_errors(spec):
    with pytest.raises(CompressorError) as e:
        get_compressor(spec)
    assert "\n" not in str(e.value) and "mixed" in str(e.value)


def test_default_budget_is_registered_with_gates():
    comp = get_compressor("mixed:40")
    assert comp.gates == {"psnr_drop": 0.3, "worst_psnr_drop": 0.5}
    assert get_compressor("mixed").name == "mixed"
