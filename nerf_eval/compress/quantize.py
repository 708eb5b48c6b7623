"""Integer quantization of the NeRF MLP: static int8 (real int8 kernels), dynamic int8, int8/int4 weight-only.

Only the MLP is quantized; the positional encoding, ray math and compositing stay fp32, and every
quantized network still maps fp32 encoded inputs (N, C) to fp32 raw outputs (N, 4).

- Static int8 (`int8-ptq-both|fine|coarse`) uses torch.ao's FX graph mode with the int8 engine measured
  fastest on this CPU (`nerf_eval.hardware.int8_engine`: oneDNN, which uses AMX tiles where a Xeon has
  them, or x86/fbgemm): Linear+ReLU
  pairs become fused int8 kernels, activations stay int8 between layers, and FX shares
  the quantization parameters of both inputs of the skip and view concatenations. Weights are symmetric
  per output channel in [-127, 127] (the rule of `qmath`); activations are calibrated on the real MLP
  inputs that calibration rays produce (coarse samples for the coarse net, coarse+fine for the fine net).
  The density/colour heads (4 outputs, a negligible share of the work) stay fp32 with fp32 outputs: an
  int8 output would put the rgb logits on one grid with sigma, whose range is far wider.
  Measured on this project's CPU (vanilla MLP, 65,536 points) the FX route ran 3.3x (2 threads, wall)
  to 4.0x (1 thread, CPU time) faster than fp32 with no compile step; PT2E + X86InductorQuantizer
  (torchao) needed torch.compile with freezing (about 25 s) and ran about 3.1x.
- Dynamic int8 (`int8-dynamic`) quantizes weights ahead and activations per batch (torch.ao dynamic
  Linear); weight-only int8/int4 (`int8-weight-only`, `int4-weight`) store integer weights (int4 packed
  two per byte, one scale per group of inputs) and dequantize them on the fly: a size win only.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass, field
from typing import Iterator
from unittest import mock

import torch
import torch.fx.config
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import QConfig, QConfigMapping, quantize_dynamic
from torch.ao.quantization.backend_config.onednn import get_onednn_backend_config
from torch.ao.quantization.backend_config.x86 import get_x86_backend_config
from torch.ao.quantization.observer import (HistogramObserver, MinMaxObserver, PerChannelMinMaxObserver,
                                            PlaceholderObserver)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from nerf_eval.compress import qmath
from nerf_eval.compress.base import FunctionCompressor, check_calibration, register
from nerf_eval.compress.memo import CalibrationCache
from nerf_eval.errors import CompressorError
from nerf_eval.hardware import int8_engine, int8_saturates, quantized_engine
from nerf_eval.model import ModelPair, NeRF
from nerf_eval.render import Rays, RenderSettings, render_rays

PRECISIONS = ("int8", "fp32")
HEADS = ("alpha_linear", "rgb_linear", "output_linear")
WHICH = ("both", "coarse", "fine")
OBSERVERS = ("minmax", "histogram")
CALIBRATION_CHUNK = 65536
STATIC_INT8_META = "nerfcompress_static_int8"  # GraphModule.meta key: what rebuilds the module for loading


@dataclass(frozen=True)
class CalibrationOptions:
    """How calibration rays become MLP inputs: how many rays (sub-sampled, seeded), rendered with `settings`.

    `observer` picks the activation range estimate: "minmax" (keeps every activation in range) or
    "histogram" (torch's L2-optimal clipping)."""

    rays: int = 2048
    seed: int = 0
    settings: RenderSettings = field(default_factory=RenderSettings)
    observer: str = "minmax"

    def __post_init__(self) -> None:
        if self.rays < 1:
            raise CompressorError(f"calibration size must be at least one ray, got {self.rays}")
        if self.observer not in OBSERVERS:
            raise CompressorError(f"{self.observer}: unknown activation observer; choose one of {OBSERVERS}")


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
    for role, net in pair.networks().items():
        check_float_network(net, who, role)


def linear_layer_names(net: nn.Module) -> list[str]:
    """Names of the Linear layers of a float network, in module order."""
    return [n for n, m in net.named_modules() if type(m) is nn.Linear]


def calibration_subset(calibration: Rays, n_rays: int, seed: int = 0) -> Rays:
    """At most `n_rays` of `calibration`, drawn without replacement (seeded)."""
    if len(calibration) <= n_rays:
        return calibration
    g = torch.Generator().manual_seed(seed)
    return calibration[torch.randperm(len(calibration), generator=g)[:n_rays]]


class InputRecorder(nn.Module):
    """Passes inputs through `net` and keeps a copy of each batch (what the renderer feeds the MLP)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.batches: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.detach().clone())
        return self.net(x)


def record_network_inputs(pair: ModelPair, rays: Rays, settings: RenderSettings = RenderSettings()
                          ) -> dict[str, torch.Tensor]:
    """The encoded inputs (N, C) each network of `pair` receives while rendering `rays` (by network name)."""
    recorders = {name: InputRecorder(net) for name, net in pair.networks().items()}
    recording = ModelPair(recorders["coarse"], recorders.get("fine"), pair.config, pair.meta)
    with torch.inference_mode():
        for s in range(0, len(rays), settings.chunk):
            render_rays(recording, rays[s:s + settings.chunk], settings)
    return {name: torch.cat(r.batches) for name, r in recorders.items()}


class InputsCache(CalibrationCache):
    """The last few recordings of network inputs, reused while the same networks render the same
    calibration rays with the same options: the static int8 variants and the mixed-precision search over
    one checkpoint render the calibration rays once. See `nerf_eval.compress.memo` for when an entry
    counts as the same; results are identical with or without the cache."""

    def __init__(self, size: int = 2) -> None:
        super().__init__(size)

    def get(self, pair: ModelPair, calibration: Rays, options: tuple) -> dict[str, torch.Tensor] | None:
        return self.find(pair, calibration, lambda how: how == options)

    def put(self, pair: ModelPair, calibration: Rays, options: tuple, inputs: dict[str, torch.Tensor]) -> None:
        self.add(pair, calibration, options, inputs)


INPUTS_CACHE = InputsCache()


def calibration_inputs(pair: ModelPair, calibration: Rays, options: CalibrationOptions, who: str
                       ) -> dict[str, torch.Tensor]:
    """Check the calibration rays, sub-sample them and record each network's MLP inputs (through
    INPUTS_CACHE; callers must not modify the returned tensors in place)."""
    check_calibration(calibration, who)
    key = (options.rays, options.seed, options.settings)
    inputs = INPUTS_CACHE.get(pair, calibration, key)
    if inputs is None:
        rays = calibration_subset(calibration, options.rays, options.seed)
        inputs = record_network_inputs(pair, rays, options.settings)
        INPUTS_CACHE.put(pair, calibration, key, inputs)
    return inputs


@contextlib.contextmanager
def int8_packing(engine: str | None = None) -> Iterator[str]:
    """Pack int8 weights with `engine` (default: this machine's fastest, `nerf_eval.hardware.int8_engine`),
    quietly; yields the engine's name.

    torch.ao's FX API warns that it is deprecated at every call, and its tracer records a stack trace per
    node (whose first use imports the whole compiler stack, seconds per process): both are switched off."""
    engine = engine or int8_engine()
    with quantized_engine(engine), warnings.catch_warnings(), \
            mock.patch.object(torch.fx.config, "do_not_emit_stack_traces", True):
        warnings.simplefilter("ignore")
        yield engine


def backend_config(engine: str):
    """torch.ao's FX backend config for `engine` (which fusions and dtypes its kernels support)."""
    return get_onednn_backend_config() if engine == "onednn" else get_x86_backend_config()


def int8_qconfig(observer: str = "minmax", reduce_range: bool = False) -> QConfig:
    """Static int8 qconfig: uint8 activations over the full range (7 bits with `reduce_range`, for CPUs
    whose int8 GEMM saturates, see `nerf_eval.hardware.int8_saturates`), symmetric per-channel int8
    weights in [-127, 127]."""
    act = {"minmax": MinMaxObserver, "histogram": HistogramObserver}[observer]
    return QConfig(activation=act.with_args(dtype=torch.quint8, reduce_range=reduce_range),
                   weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                                             quant_min=-127, quant_max=127))


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
    """torch.cat that joins the uint8 payloads of quantized tensors sharing one scale and zero point.

    FX gives both inputs of the skip and view concatenations one observer, but torch's quantized cat
    still dequantizes every input and requantizes the result (measured: about 30% of the int8 MLP's time);
    with equal parameters that round trip is the identity. Anything else goes to torch.cat."""
    first = tensors[0]
    same = all(t.is_quantized and t.qscheme() == torch.per_tensor_affine and t.dtype == first.dtype
               and t.q_scale() == first.q_scale() and t.q_zero_point() == first.q_zero_point() for t in tensors)
    if not same:
        return torch.cat(tensors, dim)
    payload = torch.cat([t.int_repr() for t in tensors], dim)
    return torch._make_per_tensor_quantized_tensor(payload, first.q_scale(), first.q_zero_point())


def _fast_cats(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is torch.cat:
            node.target = cat_shared_qparams
    gm.recompile()
    return gm


def static_int8_network(net: nn.Module, inputs: torch.Tensor, plan: dict[str, str] | None = None,
                        observer: str = "minmax", who: str = "int8-ptq",
                        reduce_range: bool | None = None, engine: str | None = None) -> nn.Module:
    """An int8 copy of float NeRF `net` calibrated on its recorded `inputs`; `plan` maps layers to int8/fp32.

    Weights are packed for `engine` (default: this machine's fastest int8 engine). Activations use 7 bits
    where that engine's int8 GEMM saturates on 8 (`reduce_range=None`: measured).
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
    quantized.meta[STATIC_INT8_META] = {"config": net.config.to_dict(), "plan": dict(plan), "observer": observer,
                                        "reduce_range": reduce_range, "engine": engine}
    return quantized


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


def pair_with_networks(pair: ModelPair, nets: dict[str, nn.Module], info: dict) -> ModelPair:
    """A new pair: networks in `nets` replace the originals, the others are copied unchanged."""
    coarse = nets.get("coarse", copy.deepcopy(pair.coarse))
    fine = nets.get("fine", copy.deepcopy(pair.fine)) if pair.fine is not None else None
    return ModelPair(coarse, fine, pair.config, {**pair.meta, "compression": info})


def _selected(pair: ModelPair, which: str, who: str) -> list[str]:
    if which not in WHICH:
        raise CompressorError(f"{who}: unknown network selection {which!r}; choose one of {WHICH}")
    names = [n for n in pair.networks() if which in ("both", n)]
    if not names:
        raise CompressorError(f"{who}: the pair has no {which} network to quantize")
    return names


def static_int8_pair(pair: ModelPair, calibration: Rays, which: str = "both",
                     options: CalibrationOptions = CalibrationOptions(), who: str = "int8-ptq",
                     plans: dict[str, dict[str, str]] | None = None) -> ModelPair:
    """Static int8 PTQ of the coarse, the fine or both networks of a float pair (the others stay fp32).

    `plans` optionally gives per-network layer precisions, e.g. {"fine": {"pts_linears.0": "fp32"}}
    (unlisted layers follow `default_plan`), so coarse and fine may differ."""
    names = _selected(pair, which, who)
    check_float_pair(pair, who)
    plans = plans or {}
    unknown = set(plans) - set(pair.networks())
    if unknown:
        raise CompressorError(f"{who}: plans name unknown networks {sorted(unknown)}; "
                              f"the pair has {list(pair.networks())}")
    for n, plan in plans.items():
        check_plan(pair.networks()[n], plan, who)
    inputs = calibration_inputs(pair, calibration, options, who)
    nets = {n: static_int8_network(pair.networks()[n], inputs[n], plans.get(n), options.observer, who) for n in names}
    info = {"method": who, "quantized": names, "calibration_rays": min(options.rays, len(calibration)),
            "calibration_points": {n: int(inputs[n].shape[0]) for n in names},
            "plans": {n: {**default_plan(pair.networks()[n]), **plans.get(n, {})} for n in names}}
    return pair_with_networks(pair, nets, info)


def dynamic_int8_pair(pair: ModelPair, calibration: Rays, who: str = "int8-dynamic") -> ModelPair:
    """Dynamic int8 of both networks (calibration rays are not needed; they are still checked)."""
    check_calibration(calibration, who)
    check_float_pair(pair, who)
    nets = {n: dynamic_int8_network(net, who=who) for n, net in pair.networks().items()}
    return pair_with_networks(pair, nets, {"method": who, "quantized": list(nets)})


def weight_only_pair(pair: ModelPair, calibration: Rays, bits: int, group_size: int | None = None,
                     who: str = "weight-only") -> ModelPair:
    """Weight-only int8/int4 of both networks (data-free; calibration rays are still checked)."""
    check_calibration(calibration, who)
    check_float_pair(pair, who)
    nets = {n: weight_only_network(net, bits, group_size, who=who) for n, net in pair.networks().items()}
    info = {"method": who, "bits": bits, "group_size": group_size, "quantized": list(nets)}
    return pair_with_networks(pair, nets, info)


def _positive_int(param: str | None, default: int, spec: str, what: str) -> int:
    if param is None:
        return default
    try:
        value = int(param)
    except ValueError:
        raise CompressorError(f"{spec}: {what} must be a positive integer, got {param!r}") from None
    if value < 1:
        raise CompressorError(f"{spec}: {what} must be a positive integer, got {param!r}")
    return value


PTQ_GATES = {"psnr_drop": 0.3, "worst_psnr_drop": 0.5}


def _ptq_factory(which: str):
    base = f"int8-ptq-{which}"

    def factory(param: str | None) -> FunctionCompressor:
        spec = base if param is None else f"{base}:{param}"
        options = CalibrationOptions(rays=_positive_int(param, CalibrationOptions.rays, spec, "calibration rays"))
        gates = {**PTQ_GATES, "size_ratio": 0.30} if which == "both" else dict(PTQ_GATES)
        return FunctionCompressor(spec, lambda pair, cal: static_int8_pair(pair, cal, which, options, spec), gates,
                                  f"static int8 PTQ of the {which} network(s), {options.rays} calibration rays")
    return factory


for _which in WHICH:
    register(f"int8-ptq-{_which}", _ptq_factory(_which),
             description=f"static int8 PTQ (FX, int8 kernels of the engine measured fastest here) of the {_which} network(s); "
                         "parameter: calibration rays (default 2048)")


def _no_param(spec: str, param: str | None) -> None:
    if param is not None:
        raise CompressorError(f"{spec}:{param}: {spec} takes no parameter")


def _dynamic_factory(param: str | None) -> FunctionCompressor:
    _no_param("int8-dynamic", param)
    return FunctionCompressor("int8-dynamic", dynamic_int8_pair, dict(PTQ_GATES),
                              "dynamic int8 (activations quantized per batch)")


def _weight_only_factory(param: str | None) -> FunctionCompressor:
    _no_param("int8-weight-only", param)
    return FunctionCompressor("int8-weight-only", lambda pair, cal: weight_only_pair(pair, cal, 8, None,
                                                                                      "int8-weight-only"),
                              {"psnr_drop": 0.1, "size_ratio": 0.30}, "int8 weights per channel, fp32 math")


def _int4_factory(param: str | None) -> FunctionCompressor:
    spec = "int4-weight" if param is None else f"int4-weight:{param}"
    group = _positive_int(param, 32, spec, "group size")
    return FunctionCompressor(spec, lambda pair, cal: weight_only_pair(pair, cal, 4, group, spec),
                              {"size_ratio": 0.20, "psnr_drop": 1.0},
                              f"int4 weights, one scale per {group} inputs, fp32 math")


register("int8-dynamic", _dynamic_factory, description="dynamic int8: weights int8, activations quantized per batch")
register("int8-weight-only", _weight_only_factory,
         description="int8 weights per channel, dequantized on the fly (size)")
register("int4-weight", _int4_factory, description="int4 weights packed two per byte, per-group scales "
                                                   "(parameter: group size, default 32)")

__all__ = ["CalibrationOptions", "InputRecorder", "WeightOnlyLinear", "calibration_inputs", "cat_shared_qparams",
           "check_float_network", "default_plan", "dynamic_int8_network", "linear_layer_names",
           "pair_with_networks", "record_network_inputs", "static_int8_network", "static_int8_pair",
           "weight_only_network", "weight_only_pair"]
