"""Dynamic int8: weights quantized ahead, activations quantized per batch (torch.ao dynamic Linear)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.ao.quantization import QConfig, quantize_dynamic
from torch.ao.quantization.observer import PlaceholderObserver

from nerf_eval.compress.base import check_calibration
from nerf_eval.compress.kinds import NetworkKind, layer_types, register_kind
from nerf_eval.compress.quantize.int8 import int8_packing, int8_qconfig
from nerf_eval.compress.quantize.plans import (check_float_network, check_float_pair, check_plan, default_plan,
                                               pair_with_networks)
from nerf_eval.model import ModelPair, NeRF, NeRFConfig
from nerf_eval.render import Rays


def dynamic_int8_network(net: nn.Module, plan: dict[str, str] | None = None, who: str = "int8-dynamic") -> nn.Module:
    """A copy of `net` whose int8 layers quantize their inputs per batch (torch.ao dynamic Linear)."""
    check_float_network(net, who, "given")
    plan = {**default_plan(net), **(plan or {})}
    check_plan(net, plan, who)
    qconfig = QConfig(activation=PlaceholderObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=255,
                                                               is_dynamic=True),
                      weight=int8_qconfig().weight)
    spec = {layer: qconfig for layer, precision in plan.items() if precision == "int8"}
    with int8_packing():
        return quantize_dynamic(copy.deepcopy(net), spec, dtype=torch.qint8).eval()


def dynamic_int8_pair(pair: ModelPair, calibration: Rays, who: str = "int8-dynamic") -> ModelPair:
    """Dynamic int8 of both networks (calibration rays are not needed; they are still checked)."""
    check_calibration(calibration, who)
    check_float_pair(pair, who)
    nets = {n: dynamic_int8_network(net, who=who) for n, net in pair.networks().items()}
    return pair_with_networks(pair, nets, {"method": who, "quantized": list(nets)})


def _is_dynamic_int8(net: nn.Module) -> bool:
    return isinstance(net, NeRF) and nn.quantized.dynamic.Linear in layer_types(net)


def _dynamic_describe(net: NeRF) -> dict:
    plan = {n: ("int8" if isinstance(m, nn.quantized.dynamic.Linear) else "fp32")
            for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.quantized.dynamic.Linear))}
    return {"config": net.config.to_dict(), "plan": plan}


register_kind(NetworkKind("int8-dynamic", _is_dynamic_int8, _dynamic_describe,
                          lambda s: dynamic_int8_network(NeRF(NeRFConfig.from_dict(s["config"])), s["plan"]),
                          loading=int8_packing))
