"""Integer quantization of the NeRF MLP: static int8 (real int8 kernels), dynamic int8, int8/int4 weight-only.

Only the MLP is quantized; the positional encoding, ray math and compositing stay fp32, and every
quantized network still maps fp32 encoded inputs (N, C) to fp32 raw outputs (N, 4).

- `static`: static int8 PTQ via torch.ao's FX graph mode (`int8-ptq-both|fine|coarse`), calibrated on
  the MLP inputs that `calibration` records from calibration rays; `heads` holds its int8-weight
  density/colour heads (the default; `:heads=fp32` keeps fp32 weights), which read the int8 activations'
  codes and write fp32;
- `dynamic`: dynamic int8 (`int8-dynamic`), weights quantized ahead and activations per batch;
- `weight_only`: int8/int4 integer weights dequantized on the fly (`int8-weight-only`, `int4-weight`):
  a size win only;
- `plans` (which layers are quantized, the float-network checks) and `int8` (packing engine, qconfig)
  are shared by the techniques; `compressors` registers the names on import.
"""

from nerf_eval.compress.quantize.calibration import (INPUTS_CACHE, OBSERVERS, CalibrationOptions, InputRecorder,
                                                     InputsCache, calibration_inputs, calibration_subset,
                                                     record_network_inputs)
from nerf_eval.compress.quantize.compressors import PTQ_GATES
from nerf_eval.compress.quantize.dynamic import dynamic_int8_network, dynamic_int8_pair
from nerf_eval.compress.quantize.int8 import int8_packing, int8_qconfig
from nerf_eval.compress.quantize.plans import (HEADS, PRECISIONS, WHICH, check_float_network, check_float_pair,
                                               check_plan, default_plan, linear_layer_names, pair_with_networks,
                                               selected_networks)
from nerf_eval.compress.quantize.static import (CALIBRATION_CHUNK, STATIC_INT8_META, backend_config,
                                                cat_shared_qparams, static_int8_network, static_int8_pair)
from nerf_eval.compress.quantize.weight_only import WeightOnlyLinear, weight_only_network, weight_only_pair

__all__ = ["CALIBRATION_CHUNK", "HEADS", "INPUTS_CACHE", "OBSERVERS", "PRECISIONS", "PTQ_GATES", "STATIC_INT8_META",
           "WHICH", "CalibrationOptions", "InputRecorder", "InputsCache", "WeightOnlyLinear", "backend_config",
           "calibration_inputs", "calibration_subset", "cat_shared_qparams", "check_float_network",
           "check_float_pair", "check_plan", "default_plan", "dynamic_int8_network", "dynamic_int8_pair",
           "int8_packing", "int8_qconfig", "linear_layer_names", "pair_with_networks", "record_network_inputs",
           "selected_networks", "static_int8_network", "static_int8_pair", "weight_only_network",
           "weight_only_pair"]
