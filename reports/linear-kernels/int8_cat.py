"""Joining two quantized tensors that share a scale and zero point (the int8 skip concatenation's shapes):
python int8_cat.py. Prints each way's median time per call (`nerf_eval.throughput.median_time`, 200 calls)
and whether it gives the same codes."""
import warnings

import torch

from nerf_eval.compress.quantize import cat_shared_qparams
from nerf_eval.hardware import machine_summary
from nerf_eval.throughput import median_time

warnings.simplefilter("ignore")  # torch warns that quantized tensors are deprecated at each creation


a = torch.quantize_per_tensor(torch.rand(4096, 63), 0.01, 3, torch.quint8)
b = torch.quantize_per_tensor(torch.rand(4096, 256), 0.01, 3, torch.quint8)
ways = {
    "int_repr payloads joined": lambda: torch._make_per_tensor_quantized_tensor(
        torch.cat([a.int_repr(), b.int_repr()], 1), 0.01, 3),
    "torch.cat (dequantize, requantize)": lambda: torch.cat([a, b], 1),
    "cat_shared_qparams (codes copied into slices)": lambda: cat_shared_qparams([a, b], 1),
}
reference = torch.cat([a.int_repr(), b.int_repr()], 1)
print(f"4096x63 and 4096x256 quint8 joined on {machine_summary()}")
with torch.inference_mode():
    for name, fn in ways.items():
        print(f"  {name:48s} {median_time(fn, 200) * 1e6:8.1f} us, same codes: {torch.equal(fn().int_repr(), reference)}")
