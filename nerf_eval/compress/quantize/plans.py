"""Which layers of a float NeRF get integer weights, and what every quantization technique checks and builds.

A plan maps each Linear layer to a precision ("int8" or "fp32"); by default every layer but the
density/colour heads is quantized (`default_plan`). Techniques accept only plain float NeRF networks
(`check_float_network`) and return a new pair whose quantized networks replace the originals
(`pair_with_networks`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair, NeRF

PRECISIONS = ("int8", "fp32")
HEADS = ("alpha_linear", "rgb_linear", "output_linear")
WHICH = ("both", "coarse", "fine")


def check_float_network(net: nn.Module | None, who: str, role: str) -> None:
    """Refuse networks that are not plain float NeRF modules (e.g. an already-quantized or cast network)."""
    if net is None:
        return
    if not isinstance(net, NeRF):
        raise CompressorError(f"{who}: the {role} network is a {type(net).__name__}, not a float NeRF "
                              "(already compressed?)")
    odd = [n for n, m in net.named_modules() if not isinstance(m, (NeRF, nn.ModuleList)) and type(m) is not nn.Linear]
    if odd:
        raise CompressorError(f"{who}: the {role} network has non-float layers ({odd[0]}: "
                              f"{type(net.get_submodule(odd[0])).__name__}); it is already compressed")
    if any(p.dtype != torch.float32 for p in net.parameters()):
        raise CompressorError(f"{who}: the {role} network is not fp32 (already cast?)")


def check_float_pair(pair: ModelPair, who: str) -> None:
    """`check_float_network` for every network of `pair`."""
    for role, net in pair.networks().items():
        check_float_network(net, who, role)


def linear_layer_names(net: nn.Module) -> list[str]:
    """Names of the Linear layers of a float network, in module order."""
    return [n for n, m in net.named_modules() if type(m) is nn.Linear]


def check_plan(net: nn.Module, plan: dict[str, str], who: str) -> None:
    """Refuse unknown layer names and precision names in a per-layer precision plan."""
    layers = set(linear_layer_names(net))
    for layer, precision in plan.items():
        if layer not in layers:
            raise CompressorError(f"{who}: {layer!r} is not a Linear layer of the network (has {sorted(layers)})")
        if precision not in PRECISIONS:
            raise CompressorError(f"{who}: unknown precision {precision!r} for {layer}; choose one of {PRECISIONS}")


def default_plan(net: nn.Module) -> dict[str, str]:
    """int8 for every Linear layer except the density/colour heads (fp32)."""
    return {n: ("fp32" if n in HEADS else "int8") for n in linear_layer_names(net)}


def pair_with_networks(pair: ModelPair, nets: dict[str, nn.Module], info: dict) -> ModelPair:
    """A new pair: networks in `nets` replace the originals, the others are copied unchanged."""
    coarse = nets.get("coarse", copy.deepcopy(pair.coarse))
    fine = nets.get("fine", copy.deepcopy(pair.fine)) if pair.fine is not None else None
    return ModelPair(coarse, fine, pair.config, {**pair.meta, "compression": info})


def selected_networks(pair: ModelPair, which: str, who: str) -> list[str]:
    """Names of the networks of `pair` that `which` ("both", "coarse" or "fine") selects."""
    if which not in WHICH:
        raise CompressorError(f"{who}: unknown network selection {which!r}; choose one of {WHICH}")
    names = [n for n in pair.networks() if which in ("both", n)]
    if not names:
        raise CompressorError(f"{who}: the pair has no {which} network to quantize")
    return names
