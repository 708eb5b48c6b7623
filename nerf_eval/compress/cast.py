"""The identity (fp32 baseline) and floating-point casts (fp16, bf16) of the MLP.

The cast runs inside a wrapper: encoded inputs arrive in fp32 and are cast to the network's dtype, the
raw outputs are cast back to fp32, so the encoding and compositing stay fp32 (sin(2^9 x) has no
meaning in half precision) and the renderer does not change.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nerf_eval.compress.base import FunctionCompressor, register
from nerf_eval.compress.kinds import NetworkKind, layer_types, register_kind
from nerf_eval.compress.params import CompressorSpec, Param
from nerf_eval.errors import CompressorError
from nerf_eval.hardware import HALF_DTYPES
from nerf_eval.kernels import linear_kernel_probe
from nerf_eval.model import ModelPair, NeRF, NeRFConfig, is_float_nerf
from nerf_eval.render import NARROW_NET_CHUNK, POINTS_PER_CALL, Rays

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class CastNetwork(nn.Module):
    """Runs `net` (already converted to `dtype`) on fp32 inputs and returns fp32 outputs."""

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype
        # 2-byte activations: more points per call for the same memory (nerf_eval.render.NARROW_NET_CHUNK)
        self.meta = {POINTS_PER_CALL: NARROW_NET_CHUNK} if dtype in HALF_DTYPES else {}
        linear_kernel_probe(dtype)  # choose the Linear kernel now, not inside the first timed render

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).float()


def _cast_describe(net: CastNetwork) -> dict:
    return {"config": net.net.config.to_dict(), "dtype": str(net.dtype).removeprefix("torch.")}


def _cast_rebuild(settings: dict) -> nn.Module:
    dtype = getattr(torch, settings["dtype"])
    return CastNetwork(NeRF(NeRFConfig.from_dict(settings["config"])).to(dtype), dtype)


register_kind(NetworkKind("cast", lambda n: isinstance(n, CastNetwork) and isinstance(n.net, NeRF)
                          and layer_types(n.net) <= {nn.Linear},
                          _cast_describe, _cast_rebuild))


def cast_network(net: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of `net` whose weights are stored and computed in `dtype`."""
    if dtype == torch.float32:
        return copy.deepcopy(net)
    if not is_float_nerf(net):
        raise CompressorError(f"cannot cast a {type(net).__name__} network to {dtype}: only float NeRF networks "
                              "can be cast (cast before quantizing, or cast the other network)")
    return CastNetwork(copy.deepcopy(net).to(dtype), dtype)


def cast_pair(pair: ModelPair, dtype: torch.dtype, which: str = "both") -> ModelPair:
    """Cast the coarse, the fine or both networks of `pair` to `dtype`."""
    coarse = cast_network(pair.coarse, dtype if which in ("both", "coarse") else torch.float32)
    fine = None
    if pair.fine is not None:
        fine = cast_network(pair.fine, dtype if which in ("both", "fine") else torch.float32)
    return ModelPair(coarse, fine, pair.config, dict(pair.meta))


def _identity(pair: ModelPair, calibration: Rays) -> ModelPair:
    return cast_pair(pair, torch.float32)


register("fp32", lambda _spec: FunctionCompressor("fp32", _identity, description="identity: the fp32 baseline"),
         description="identity: the fp32 baseline")

NETWORK = Param("network", str, "both", choices=("both", "coarse", "fine"), positional=True,
                help="network to cast", search=("coarse", "fine", "both"))


def _cast_factory(dtype: torch.dtype, gates: dict[str, float], what: str):
    def factory(spec: CompressorSpec) -> FunctionCompressor:
        which = spec["network"]
        return FunctionCompressor(str(spec), lambda pair, _c: cast_pair(pair, dtype, which), dict(gates),
                                  f"{what} ({which})")
    return factory


register("fp16", _cast_factory(torch.float16, {"psnr_drop": 0.1}, "MLP weights and math in fp16"), params=[NETWORK],
         description="MLP weights and math in fp16 (size win; slow on CPUs); parameter: coarse|fine|both")
register("bf16", _cast_factory(torch.bfloat16, {"psnr_drop": 0.1}, "MLP weights and math in bf16"), params=[NETWORK],
         search="precision",
         description="MLP weights and math in bf16 (fast on CPUs with native bf16); parameter: coarse|fine|both")
