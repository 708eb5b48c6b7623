"""Static int8 PTQ through torch.ao's FX graph mode: real int8 kernels, activations int8 between layers.

Uses the int8 engine measured fastest on this CPU (`nerf_eval.hardware.int8_engine`: oneDNN, which
uses AMX tiles where a Xeon has them, or x86/fbgemm): Linear+ReLU pairs become fused int8 kernels,
activations stay int8 between layers, and FX shares the quantization parameters of both inputs of the
skip and view concatenations. Weights are symmetric per output channel in [-127, 127] (the rule of
`qmath`); activations are calibrated on the real MLP inputs that calibration rays produce (coarse
samples for the coarse net, coarse+fine for the fine net). The density/colour heads (4 outputs) keep
fp32 outputs: an int8 output would put the rgb logits on one grid with sigma, whose range is far wider.
The pair's compressors give them int8 weights that read the activations' codes directly (`heads="int8"`,
`nerf_eval.compress.quantize.heads`), which saves a dequantize pass and an fp32 GEMM per head; with
`heads="fp32"` they keep fp32 weights, fed the dequantized activations. The PSNR drops of the two differ
by at most 0.012 dB on object, forward and flower (`reports/linear-kernels/int8-heads-amx.log`).
Measured on this project's CPU (vanilla MLP, 65,536 points) the FX route ran 3.3x (2 threads, wall)
to 4.0x (1 thread, CPU time) faster than fp32 with no compile step; PT2E + X86InductorQuantizer
(torchao) needed torch.compile with freezing (about 25 s) and ran about 3.1x.
"""

from __future__ import annotations

import copy

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import QConfigMapping
from torch.ao.quantization.backend_config.onednn import get_onednn_backend_config
from torch.ao.quantization.backend_config.x86 import get_x86_backend_config
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from nerf_eval.compress.kinds import NetworkKind, register_kind
from nerf_eval.compress.quantize.calibration import CalibrationOptions, calibration_inputs
from nerf_eval.compress.quantize.heads import DEFAULT_HEADS, HEAD_PRECISIONS, with_int8_weight_heads
from nerf_eval.compress.quantize.int8 import int8_packing, int8_qconfig
from nerf_eval.compress.quantize.plans import (HEADS, check_float_network, check_float_pair, check_plan,
                                               default_plan, pair_with_networks, selected_networks)
from nerf_eval.errors import CompressorError
from nerf_eval.hardware import int8_engine, int8_saturates
from nerf_eval.model import ModelPair, NeRF, NeRFConfig
from nerf_eval.render import NARROW_NET_CHUNK, POINTS_PER_CALL, Rays

CALIBRATION_CHUNK = 65536
STATIC_INT8_META = "nerfcompress_static_int8"  # GraphModule.meta key: what rebuilds the module for loading


def backend_config(engine: str):
    """torch.ao's FX backend config for `engine` (which fusions and dtypes its kernels support)."""
    return get_onednn_backend_config() if engine == "onednn" else get_x86_backend_config()


def _traceable(net: nn.Module) -> torch.fx.GraphModule:
    """FX graph of `net` with torch.relu written as F.relu, the form FX fuses with Linear into one int8 kernel."""
    gm = torch.fx.symbolic_trace(copy.deepcopy(net))
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is torch.relu:
            node.target = F.relu
    gm.recompile()
    return gm


def _output_cat_index(gm: torch.fx.GraphModule) -> int | None:
    """Position among the graph's torch.cat calls of the one that makes the output (the two heads joined)."""
    cats = [n for n in gm.graph.nodes if n.op == "call_function" and n.target is torch.cat]
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    return cats.index(out) if out in cats else None


def cat_shared_qparams(tensors: list[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """torch.cat that copies the codes of quantized tensors sharing one scale and zero point.

    FX gives both inputs of the skip and view concatenations one observer, but torch's quantized cat
    still dequantizes every input and requantizes the result (measured: about 30% of the int8 MLP's time);
    with equal parameters that round trip is the identity. Copying each input into its slice of one
    quantized output is a plain copy of codes, about 8x faster than joining `int_repr()` copies
    (measured on an AMX Xeon, reports/linear-kernels/int8-cat-amx.log). Anything else goes to torch.cat."""
    first = tensors[0]
    same = all(t.is_quantized and t.qscheme() == torch.per_tensor_affine and t.dtype == first.dtype
               and t.q_scale() == first.q_scale() and t.q_zero_point() == first.q_zero_point()
               and t.dim() == first.dim() for t in tensors)
    if not same:
        return torch.cat(tensors, dim)
    dim = dim % first.dim()
    shape = list(first.shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    out = torch._empty_affine_quantized(shape, scale=first.q_scale(), zero_point=first.q_zero_point(),
                                        dtype=first.dtype)
    offset = 0
    for t in tensors:
        out.narrow(dim, offset, t.shape[dim]).copy_(t)
        offset += t.shape[dim]
    return out


def _fast_cats(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is torch.cat:
            node.target = cat_shared_qparams
    gm.recompile()
    return gm


def static_int8_network(net: nn.Module, inputs: torch.Tensor, plan: dict[str, str] | None = None,
                        observer: str = "minmax", who: str = "int8-ptq",
                        reduce_range: bool | None = None, engine: str | None = None,
                        heads: str = "fp32") -> nn.Module:
    """An int8 copy of float NeRF `net` calibrated on its recorded `inputs`; `plan` maps layers to int8/fp32.

    Weights are packed for `engine` (default: this machine's fastest int8 engine). Activations use 7 bits
    where that engine's int8 GEMM saturates on 8 (`reduce_range=None`: measured). `heads="int8"` gives the
    fp32 heads that follow an int8 layer int8 weights and an fp32 output (see the module docstring).
    Returns an FX GraphModule that takes and returns fp32 tensors (quantize/dequantize at its boundaries);
    its `meta[STATIC_INT8_META]` records the float config, plan, observer and activation range, which is
    what `nerf_eval.compress.saved` needs to rebuild the same graph before loading a saved state.
    """
    check_float_network(net, who, "given")
    if inputs.dim() != 2 or inputs.shape[0] == 0:
        raise CompressorError(f"{who}: empty calibration inputs (shape {tuple(inputs.shape)})")
    if not torch.isfinite(inputs).all():
        raise CompressorError(f"{who}: calibration inputs contain NaN or inf")
    plan = {**default_plan(net), **(plan or {})}
    check_plan(net, plan, who)
    if heads not in HEAD_PRECISIONS:
        raise CompressorError(f"{who}: unknown head precision {heads!r}; choose one of {HEAD_PRECISIONS}")
    gm = _traceable(net).eval()
    engine = engine or int8_engine()
    if reduce_range is None:
        reduce_range = int8_saturates(engine)
    qmap = QConfigMapping().set_global(int8_qconfig(observer, reduce_range))
    for layer, precision in plan.items():
        if precision == "fp32":
            qmap.set_module_name(layer, None)
    cat_index = _output_cat_index(gm)
    if cat_index is not None and all(plan[h] == "fp32" for h in HEADS if h in plan):
        qmap.set_module_name_object_type_order("", torch.cat, cat_index, None)
    backend = backend_config(engine)
    with int8_packing(engine):
        prepared = prepare_fx(gm, qmap, (inputs[:2],), backend_config=backend)
        with torch.no_grad():
            for s in range(0, inputs.shape[0], CALIBRATION_CHUNK):
                prepared(inputs[s:s + CALIBRATION_CHUNK])
        quantized = convert_fx(prepared, backend_config=backend)
    quantized = _fast_cats(quantized).eval()
    if heads == "int8":
        with_int8_weight_heads(quantized, tuple(h for h in HEADS if plan.get(h) == "fp32"))
    quantized.meta[STATIC_INT8_META] = {"config": net.config.to_dict(), "plan": dict(plan), "observer": observer,
                                        "reduce_range": reduce_range, "engine": engine}
    if heads != "fp32":  # absent in files saved before heads could be int8: they rebuild with fp32 heads
        quantized.meta[STATIC_INT8_META]["heads"] = heads
    quantized.meta[POINTS_PER_CALL] = NARROW_NET_CHUNK  # int8 activations between layers (nerf_eval.render)
    return quantized


def static_int8_pair(pair: ModelPair, calibration: Rays, which: str = "both",
                     options: CalibrationOptions = CalibrationOptions(), who: str = "int8-ptq",
                     plans: dict[str, dict[str, str]] | None = None, heads: str = DEFAULT_HEADS) -> ModelPair:
    """Static int8 PTQ of the coarse, the fine or both networks of a float pair (the others stay fp32).

    `plans` optionally gives per-network layer precisions, e.g. {"fine": {"pts_linears.0": "fp32"}}
    (unlisted layers follow `default_plan`), so coarse and fine may differ. `heads`: "int8" (`DEFAULT_HEADS`)
    or "fp32" weights for the density/colour heads that the plans leave fp32 (see `static_int8_network`,
    whose own default, for callers that choose every layer by plan such as `mixed`, is "fp32")."""
    names = selected_networks(pair, which, who)
    check_float_pair(pair, who)
    plans = plans or {}
    unknown = set(plans) - set(pair.networks())
    if unknown:
        raise CompressorError(f"{who}: plans name unknown networks {sorted(unknown)}; "
                              f"the pair has {list(pair.networks())}")
    for n, plan in plans.items():
        check_plan(pair.networks()[n], plan, who)
    inputs = calibration_inputs(pair, calibration, options, who)
    nets = {n: static_int8_network(pair.networks()[n], inputs[n], plans.get(n), options.observer, who, heads=heads)
            for n in names}
    info = {"method": who, "quantized": names, "calibration_rays": min(options.rays, len(calibration)),
            "calibration_points": {n: int(inputs[n].shape[0]) for n in names},
            "plans": {n: {**default_plan(pair.networks()[n]), **plans.get(n, {})} for n in names}}
    info["heads"] = heads
    return pair_with_networks(pair, nets, info)


def _is_static_int8(net: nn.Module) -> bool:
    return isinstance(net, torch.fx.GraphModule) and STATIC_INT8_META in getattr(net, "meta", {})


def _static_int8_rebuild(settings: dict) -> nn.Module:
    """The same FX int8 graph, calibrated on stand-in inputs: `load_state_dict` then restores every
    weight, scale and zero point."""
    net = NeRF(NeRFConfig.from_dict(settings["config"]))
    stand_in = torch.linspace(-1.0, 1.0, 16 * (net.input_ch + net.input_ch_views)).reshape(16, -1)
    return static_int8_network(net, stand_in, settings["plan"], settings["observer"], "saved int8 model",
                               reduce_range=bool(settings.get("reduce_range", False)),
                               heads=settings.get("heads", "fp32"))


register_kind(NetworkKind("int8-static", _is_static_int8, lambda n: dict(n.meta[STATIC_INT8_META]),
                          _static_int8_rebuild, loading=int8_packing))
