"""Activation-aware mixed precision: int8 where the render does not notice, fp32 where it does.

The budget is a render fidelity: the PSNR (dB) of the mixed pair's rendering of probe rays (drawn from the
calibration rays) against the float pair's rendering of the same rays. Ground truth is not available to a
compressor, but fidelity converts to a PSNR drop: a float model at P dB loses about
10*log10(1 + 10**((P - F) / 10)) dB at fidelity F (P = 30, F = 40: 0.41 dB; F = 42: 0.27 dB).

1. Each layer's sensitivity is the fidelity when only that layer (in either network) is int8, with
   activations calibrated on the layer's recorded inputs; it is measured by rendering, so errors in empty
   space, where they do not change the image, count for nothing.
2. Starting from every layer in int8 (the heads stay fp32, as in `int8-ptq-both`), the most sensitive
   layer still in int8 goes back to fp32 until the fidelity meets the budget. Coarse and fine networks
   get their own plans.
3. The search calibrates on a sub-sample of the recorded inputs; the final pair is calibrated on all of
   them and measured again, and the search goes on with full calibration if it fell below the budget.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from nerf_eval.compress.base import FunctionCompressor, register
from nerf_eval.compress.params import CompressorSpec, Param
from nerf_eval.compress.quantize import (CalibrationOptions, calibration_inputs, calibration_subset,
                                         check_float_pair, default_plan, pair_with_networks, static_int8_network)
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair
from nerf_eval.render import Rays, RenderSettings, render_chunked

Plans = dict[str, dict[str, str]]


@dataclass(frozen=True)
class MixedOptions:
    """Budget and costs of the search: fidelity budget (dB), probe rays, calibration points per trial."""

    fidelity_db: float = 40.0
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    probe_rays: int = 256
    search_points: int = 32768

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fidelity_db) and self.fidelity_db > 0):
            raise CompressorError(f"mixed: the fidelity budget must be a positive number of dB, got {self.fidelity_db}")
        if self.probe_rays < 1 or self.search_points < 1:
            raise CompressorError(f"mixed: probe rays and search points must be positive, got "
                                  f"{self.probe_rays} and {self.search_points}")


def fidelity_db(rgb: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR (dB, peak 1) of `rgb` against `reference`; inf when they are equal."""
    mse = float(torch.mean((rgb.float() - reference.float()) ** 2))
    return math.inf if mse == 0.0 else -10.0 * math.log10(mse)


def _subsample(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    if x.shape[0] <= n:
        return x
    g = torch.Generator().manual_seed(seed)
    return x[torch.randperm(x.shape[0], generator=g)[:n]]


class PlanEvaluator:
    """Builds pairs for per-network precision plans (cached by plan) and measures their render fidelity."""

    def __init__(self, pair: ModelPair, inputs: dict[str, torch.Tensor], probe: Rays,
                 settings: RenderSettings, observer: str, reference: torch.Tensor | None = None) -> None:
        self.pair = pair
        self.inputs = inputs
        self.probe = probe
        self.settings = settings
        self.observer = observer
        self.reference = render_chunked(pair, probe, settings)["rgb"] if reference is None else reference
        self._nets: dict[tuple, nn.Module] = {}

    def network(self, name: str, plan: dict[str, str]) -> nn.Module:
        key = (name, tuple(sorted(plan.items())))
        if key not in self._nets:
            float_net = self.pair.networks()[name]
            if all(p == "fp32" for p in plan.values()):
                self._nets[key] = copy.deepcopy(float_net)
            else:
                self._nets[key] = static_int8_network(float_net, self.inputs[name], plan, self.observer, "mixed")
        return self._nets[key]

    def build(self, plans: Plans) -> ModelPair:
        nets = {n: self.network(n, plans[n]) for n in self.pair.networks()}
        return ModelPair(nets["coarse"], nets.get("fine"), self.pair.config, dict(self.pair.meta))

    def fidelity(self, plans: Plans) -> float:
        return fidelity_db(render_chunked(self.build(plans), self.probe, self.settings)["rgb"], self.reference)


def int8_candidates(pair: ModelPair) -> list[tuple[str, str]]:
    """(network, layer) pairs that the default plan puts in int8."""
    return [(n, layer) for n, net in pair.networks().items()
            for layer, p in default_plan(net).items() if p == "int8"]


def layer_sensitivity(evaluator: PlanEvaluator) -> dict[tuple[str, str], float]:
    """Fidelity (dB) of the render when only one layer of one network is int8, for every candidate layer."""
    pair = evaluator.pair
    all_fp32 = {n: {layer: "fp32" for layer in default_plan(net)} for n, net in pair.networks().items()}
    out = {}
    for n, layer in int8_candidates(pair):
        plans = copy.deepcopy(all_fp32)
        plans[n][layer] = "int8"
        out[(n, layer)] = evaluator.fidelity(plans)
    return out


def _relax(evaluator: PlanEvaluator, plans: Plans, order: list[tuple[str, str]], budget: float
           ) -> tuple[float, list[tuple[str, str]]]:
    """Move layers of `order` (most sensitive first) to fp32 until the fidelity meets `budget`."""
    kept = []
    fid = evaluator.fidelity(plans)
    while fid < budget and order:
        n, layer = order.pop(0)
        plans[n][layer] = "fp32"
        kept.append((n, layer))
        fid = evaluator.fidelity(plans)
    return fid, kept


def mixed_pair(pair: ModelPair, calibration: Rays, options: MixedOptions = MixedOptions(),
               who: str = "mixed") -> ModelPair:
    """Mixed int8/fp32 copy of a float pair meeting `options.fidelity_db` on probe rays (see the module doc)."""
    check_float_pair(pair, who)
    inputs = calibration_inputs(pair, calibration, options.calibration, who)
    probe = calibration_subset(calibration, options.probe_rays, options.calibration.seed + 1)
    settings, observer = options.calibration.settings, options.calibration.observer
    search_inputs = {n: _subsample(x, options.search_points, options.calibration.seed) for n, x in inputs.items()}
    search = PlanEvaluator(pair, search_inputs, probe, settings, observer)
    sensitivity = layer_sensitivity(search)
    order = sorted(sensitivity, key=lambda k: sensitivity[k])
    plans = {n: default_plan(net) for n, net in pair.networks().items()}
    search_fid, kept = _relax(search, plans, order, options.fidelity_db)
    final = PlanEvaluator(pair, inputs, probe, settings, observer, search.reference)
    final_fid, more = _relax(final, plans, order, options.fidelity_db)
    info = {"method": who, "fidelity_budget_db": options.fidelity_db, "fidelity_db": final_fid,
            "search_fidelity_db": search_fid, "plans": plans, "kept_fp32": [f"{n}.{layer}" for n, layer in kept + more],
            "sensitivity_db": {f"{n}.{layer}": v for (n, layer), v in sensitivity.items()},
            "calibration_rays": min(options.calibration.rays, len(calibration)), "probe_rays": len(probe)}
    return pair_with_networks(pair, final.build(plans).networks(), info)


BUDGET = Param("budget", float, MixedOptions.fidelity_db, low=0, bounds="(]", positional=True,
               help="fidelity budget in dB", example="40", search=(40.0,))


def _mixed_factory(spec: CompressorSpec) -> FunctionCompressor:
    name, budget = str(spec), spec["budget"]
    options = MixedOptions(fidelity_db=budget)
    return FunctionCompressor(name, lambda pair, cal: mixed_pair(pair, cal, options, name),
                              {"psnr_drop": 0.3, "worst_psnr_drop": 0.5},
                              f"int8 with the most sensitive layers in fp32, render fidelity >= {budget:g} dB")


register("mixed", _mixed_factory, defaults=("40",), params=[BUDGET], search="mixed",
         description="activation-aware mixed int8/fp32: per-layer sensitivity on calibration rays, "
                     "parameter: render fidelity budget in dB against fp32 (default 40)")
