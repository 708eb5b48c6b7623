"""Compressors by name. Importing this package registers the built-in ones.

>>> from nerf_eval.compress import get_compressor, available
>>> small = get_compressor("bf16").compress(pair, calibration_rays)
>>> parse_compressor("prune-activation:0.3:global")["scope"]
'global'
"""

from nerf_eval.compress.base import (REGISTRY, Compressor, FunctionCompressor, Registry, available,
                                     check_calibration, get_compressor, parse_compressor, register, serialized_size)
from nerf_eval.compress.params import CompressorSpec, Param, PipelineSpec
from nerf_eval.compress import cast  # noqa: F401  (registers fp32, fp16, bf16)
from nerf_eval.compress import quantize  # noqa: F401  (registers int8-ptq-*, int8-dynamic, int8-weight-only, int4-weight)
from nerf_eval.compress import mixed  # noqa: F401  (registers mixed: int8/fp32 per layer within a fidelity budget)
from nerf_eval.compress import prune  # noqa: F401  (registers prune-activation*, prune-weight-*, prune-random)
from nerf_eval.compress import samples  # noqa: F401  (registers samples: fewer samples per ray)
from nerf_eval.compress import occupancy  # noqa: F401  (registers occupancy: skip empty space, stop early)
from nerf_eval.compress import coarse_grid  # noqa: F401  (registers coarse-grid: the coarse pass as a density table)
from nerf_eval.compress import pipeline  # noqa: F401  (registers pipeline: 'a:p+b:q' runs a then b)

__all__ = ["REGISTRY", "Compressor", "CompressorSpec", "FunctionCompressor", "Param", "PipelineSpec", "Registry",
           "available", "check_calibration", "get_compressor", "parse_compressor", "register", "serialized_size"]
