"""Weight-only int8/int4: integer weights (int4 packed two per byte, one scale per group of inputs),
dequantized to fp32 at each call; a size win only, the arithmetic stays fp32."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from nerf_eval.compress import qmath
from nerf_eval.compress.base import check_calibration
from nerf_eval.compress.kinds import NetworkKind, layer_types, register_kind
from nerf_eval.compress.quantize.plans import (check_float_network, check_float_pair, check_plan, default_plan,
                                               pair_with_networks)
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair, NeRF, NeRFConfig
from nerf_eval.render import Rays


class WeightOnlyLinear(nn.Module):
    """A Linear layer stored as integers plus fp32 scales, dequantized to fp32 at each call.

    int8: `qweight` int8 (out, in), one scale per output channel. int4: `qweight` uint8 with two values per
    byte of the (out, in padded to the group size) integers, one scale per group of `group_size` inputs.
    """

    def __init__(self, linear: nn.Linear, bits: int = 8, group_size: int | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bits = bits
        w = linear.weight.detach()
        if bits == 8 and group_size is None:
            q, scales = qmath.quantize_per_channel(w, 8)
            self.group_size = 0
        else:
            q, scales = qmath.quantize_grouped(w, group_size or w.shape[1], bits)
            self.group_size = group_size or w.shape[1]
        self.padded_in = q.shape[1]
        self.register_buffer("qweight", qmath.pack_int4(q) if bits == 4 else q)
        self.register_buffer("scales", scales.float().contiguous())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def weight(self) -> torch.Tensor:
        """The dequantized fp32 weight (out, in)."""
        if self.bits == 4:
            q = qmath.unpack_int4(self.qweight, self.out_features * self.padded_in)
            q = q.reshape(self.out_features, self.padded_in)
        else:
            q = self.qweight
        if self.group_size == 0:
            return qmath.dequantize(q, self.scales)
        return qmath.dequantize_grouped(q, self.scales, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)

    def extra_repr(self) -> str:
        group = f", group_size={self.group_size}" if self.group_size else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}{group}"


def weight_only_network(net: nn.Module, bits: int = 8, group_size: int | None = None,
                        plan: dict[str, str] | None = None, who: str = "weight-only") -> nn.Module:
    """A copy of `net` whose int layers (by `plan`, default: all but the heads) store integer weights."""
    if bits not in qmath.SUPPORTED_BITS:
        raise CompressorError(f"{who}: unsupported bit width {bits}; choose one of {qmath.SUPPORTED_BITS}")
    if group_size is not None and group_size < 1:
        raise CompressorError(f"{who}: group size must be a positive integer, got {group_size}")
    check_float_network(net, who, "given")
    plan = {**default_plan(net), **(plan or {})}
    check_plan(net, plan, who)
    out = copy.deepcopy(net)
    for layer, precision in plan.items():
        if precision == "int8":
            parent, _, child = layer.rpartition(".")
            owner = out.get_submodule(parent) if parent else out
            setattr(owner, child, WeightOnlyLinear(out.get_submodule(layer), bits, group_size))
    return out.eval()


def weight_only_pair(pair: ModelPair, calibration: Rays, bits: int, group_size: int | None = None,
                     who: str = "weight-only") -> ModelPair:
    """Weight-only int8/int4 of both networks (data-free; calibration rays are still checked)."""
    check_calibration(calibration, who)
    check_float_pair(pair, who)
    nets = {n: weight_only_network(net, bits, group_size, who=who) for n, net in pair.networks().items()}
    info = {"method": who, "bits": bits, "group_size": group_size, "quantized": list(nets)}
    return pair_with_networks(pair, nets, info)


def _is_weight_only(net: nn.Module) -> bool:
    return isinstance(net, NeRF) and WeightOnlyLinear in layer_types(net)


def _weight_only_describe(net: NeRF) -> dict:
    layers = {n: m for n, m in net.named_modules() if isinstance(m, WeightOnlyLinear)}
    first = next(iter(layers.values()))
    plan = {n: ("int8" if n in layers else "fp32") for n, m in net.named_modules() if isinstance(m, (nn.Linear,
                                                                                                    WeightOnlyLinear))}
    return {"config": net.config.to_dict(), "plan": plan, "bits": first.bits, "group_size": first.group_size or None}


register_kind(NetworkKind("weight-only", _is_weight_only, _weight_only_describe,
                          lambda s: weight_only_network(NeRF(NeRFConfig.from_dict(s["config"])), s["bits"],
                                                        s["group_size"], s["plan"])))
