"""The registered integer compressors: `int8-ptq-both|coarse|fine[:RAYS]`, `int8-dynamic`,
`int8-weight-only` and `int4-weight[:GROUP]`, with their default gates."""

from __future__ import annotations

from nerf_eval.compress.base import FunctionCompressor, register
from nerf_eval.compress.quantize.calibration import CalibrationOptions
from nerf_eval.compress.quantize.dynamic import dynamic_int8_pair
from nerf_eval.compress.quantize.plans import WHICH
from nerf_eval.compress.quantize.static import static_int8_pair
from nerf_eval.compress.quantize.weight_only import weight_only_pair
from nerf_eval.errors import CompressorError


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
             description="static int8 PTQ (FX, int8 kernels of the engine measured fastest here) of the "
                         f"{_which} network(s); "
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
