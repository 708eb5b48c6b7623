"""Density/colour heads with int8 weights that read their input's uint8 codes and write fp32.

Static int8 keeps the heads (`alpha_linear`, `rgb_linear`, `output_linear`) fp32 by default: their input,
the int8 output of the layer before, is dequantized into an (N, 256) fp32 tensor first, a pass over
memory as long as the head's own work. With `heads="int8"` a head's weights are put on the symmetric
per-channel int8 grid (`qmath`, [-127, 127]) and the head reads the codes of its input directly and
writes fp32 outputs, so sigma and the rgb logits keep fp32 (an int8 *output* would put them on one
grid). On x86 torch this runs through oneDNN's int8 Linear with an fp32 output
(`torch.ops.onednn.qlinear_pointwise`): on an AMX Xeon the int8 fine network ran 1.14x faster with both
heads so (`reports/linear-kernels/int8-heads-graph-amx.log`). Where that op is missing, or clips
full-range sums (int16 accumulation without VNNI; `nerf_eval.kernels.int8_head_kernel` checks once per
process), the same arithmetic runs in fp32: the input's
dequantized values times the dequantized int8 weights; results then differ by fp32 rounding only, so a
model's quality does not depend on the machine. The head keeps nn.Linear's `weight` and `bias` (fp32,
what is saved); the int8 codes are derived from them when first used and again after loading.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nerf_eval import kernels
from nerf_eval.compress import qmath

HEAD_PRECISIONS = ("fp32", "int8")
DEFAULT_HEADS = "int8"  # what `int8-ptq-*` and autocompress give the heads unless told otherwise


def _codes_view(q: torch.Tensor) -> torch.Tensor:
    """The uint8 codes of a quint8 tensor as a plain tensor on the same memory (no copy)."""
    return torch.empty(0, dtype=torch.uint8, device=q.device).set_(q.untyped_storage(), q.storage_offset(),
                                                                    q.size(), q.stride())


class Int8WeightHead(nn.Module):
    """A head with int8 weights per output channel: quint8 input (the codes of the layer before), fp32 out.

    `weight` and `bias` are nn.Linear's, so a saved state loads as it would into the float head."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().clone(), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self._cache: dict | None = None
        self.register_load_state_dict_post_hook(lambda module, _keys: module.forget_codes())

    def forget_codes(self) -> None:
        """Drop the int8 codes derived from `weight` (they are derived again when next used)."""
        self._cache = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = None  # oneDNN's packed weight is not copied; a copy derives its own
        return state

    def _codes(self) -> dict:
        if self._cache is None:
            codes, scales = qmath.quantize_per_channel(self.weight.detach(), 8)
            cache = {"scales": scales.float(), "dequantized": qmath.dequantize(codes, scales)}
            if kernels.int8_head_kernel() == "onednn":
                cache["packed"] = kernels.int8_head_pack(codes)
                cache["zeros"] = torch.zeros(len(scales), dtype=torch.long)
            self._cache = cache
        return self._cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self._codes()
        bias = None if self.bias is None else self.bias.detach()
        if "packed" in c and x.is_quantized and x.dtype == torch.quint8 and x.device.type == "cpu" \
                and x.qscheme() == torch.per_tensor_affine:
            return kernels.int8_head_linear(_codes_view(x).contiguous(), x.q_scale(), x.q_zero_point(),
                                            c["packed"], c["scales"], c["zeros"], bias)
        x = x.dequantize() if x.is_quantized else x
        return F.linear(x, c["dequantized"].to(x.device), None if bias is None else bias.to(x.device))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights, fp32 output"


def with_int8_weight_heads(gm: torch.fx.GraphModule, heads: tuple[str, ...]) -> list[str]:
    """Swap each head in `heads` whose input is the dequantized output of an int8 layer for an
    `Int8WeightHead` fed that layer's codes; returns the heads swapped (in graph order)."""
    swapped = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or node.target not in heads or not node.args:
            continue
        source = node.args[0]
        if not (isinstance(source, torch.fx.Node) and source.op == "call_method" and source.target == "dequantize"):
            continue
        layer = gm.get_submodule(node.target)
        if type(layer) is not nn.Linear:
            continue
        node.args = (source.args[0], *node.args[1:])
        if not source.users:
            gm.graph.erase_node(source)
        gm.add_submodule(node.target, Int8WeightHead(layer))
        swapped.append(node.target)
    gm.graph.lint()
    gm.recompile()
    return swapped
