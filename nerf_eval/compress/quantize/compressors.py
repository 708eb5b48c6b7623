"""The registered integer compressors: `int8-ptq-both|coarse|fine[:RAYS][:heads=fp32]`, `int8-dynamic`,
`int8-weight-only` and `int4-weight[:GROUP]`, with their declared parameters and default gates."""

from __future__ import annotations

from nerf_eval.compress.base import FunctionCompressor, register
from nerf_eval.compress.params import CompressorSpec, Param
from nerf_eval.compress.quantize.calibration import CalibrationOptions
from nerf_eval.compress.quantize.dynamic import dynamic_int8_pair
from nerf_eval.compress.quantize.heads import DEFAULT_HEADS, HEAD_PRECISIONS
from nerf_eval.compress.quantize.plans import WHICH
from nerf_eval.compress.quantize.static import static_int8_pair
from nerf_eval.compress.quantize.weight_only import weight_only_pair

PTQ_GATES = {"psnr_drop": 0.3, "worst_psnr_drop": 0.5}
RAYS = Param("rays", int, CalibrationOptions.rays, low=1, positional=True, help="number of calibration rays")
GROUP = Param("group", int, 32, low=1, positional=True, help="int4 group size")
HEADS = Param("heads", str, DEFAULT_HEADS, choices=HEAD_PRECISIONS, help="weights of the density/colour heads",
              example="heads=fp32")


def _ptq_factory(which: str):
    def factory(spec: CompressorSpec) -> FunctionCompressor:
        name, heads = str(spec), spec["heads"]
        options = CalibrationOptions(rays=spec["rays"])
        gates = {**PTQ_GATES, "size_ratio": 0.30} if which == "both" else dict(PTQ_GATES)
        return FunctionCompressor(name, lambda pair, cal: static_int8_pair(pair, cal, which, options, name,
                                                                           heads=heads), gates,
                                  f"static int8 PTQ of the {which} network(s), {options.rays} calibration rays"
                                  + (", fp32 head weights" if heads == "fp32" else ""))
    return factory


for _which in WHICH:
    register(f"int8-ptq-{_which}", _ptq_factory(_which), params=[RAYS, HEADS], search="precision",
             description="static int8 PTQ (FX, int8 kernels of the engine measured fastest here) of the "
                         f"{_which} network(s); "
                         "parameters: calibration rays (default 2048), heads=int8|fp32 (weights of the "
                         "density/colour heads, whose outputs stay fp32; default int8)")


def _dynamic_factory(spec: CompressorSpec) -> FunctionCompressor:
    return FunctionCompressor("int8-dynamic", dynamic_int8_pair, dict(PTQ_GATES),
                              "dynamic int8 (activations quantized per batch)")


def _weight_only_factory(spec: CompressorSpec) -> FunctionCompressor:
    return FunctionCompressor("int8-weight-only", lambda pair, cal: weight_only_pair(pair, cal, 8, None,
                                                                                      "int8-weight-only"),
                              {"psnr_drop": 0.1, "size_ratio": 0.30}, "int8 weights per channel, fp32 math")


def _int4_factory(spec: CompressorSpec) -> FunctionCompressor:
    name, group = str(spec), spec["group"]
    return FunctionCompressor(name, lambda pair, cal: weight_only_pair(pair, cal, 4, group, name),
                              {"size_ratio": 0.20, "psnr_drop": 1.0},
                              f"int4 weights, one scale per {group} inputs, fp32 math")


register("int8-dynamic", _dynamic_factory, description="dynamic int8: weights int8, activations quantized per batch")
register("int8-weight-only", _weight_only_factory,
         description="int8 weights per channel, dequantized on the fly (size)")
register("int4-weight", _int4_factory, params=[GROUP], description="int4 weights packed two per byte, per-group "
                                                                   "scales (parameter: group size, default 32)")
