"""The int8 network with and without int8-weight heads: python int8_heads_graph.py.

Builds `int8-ptq-both` and `int8-ptq-both:heads=int8` from the object checkpoint (the heads of the second
are `nerf_eval.compress.quantize.heads.Int8WeightHead`: oneDNN's int8 Linear with an fp32 output, fed the
uint8 codes of the activations), times their fine networks on 16384 points, paired
(`nerf_eval.measure.latency`, 9 rounds, the order alternating), and prints a per-op profile of each.
"""
import warnings

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.kernels import int8_head_kernel
from nerf_eval.measure import calibration_batch
from nerf_eval.measure.latency import PairedProtocol, time_pair
from nerf_eval.scenes import load_scene

warnings.simplefilter("ignore")  # torch warns that quantized tensors are deprecated at each creation
scene = load_scene("object")
pair = load_checkpoint("checkpoints/object/checkpoint.pt").eval()
calibration = calibration_batch(scene, 4096)
nets = {name: get_compressor(name).compress(pair, calibration).fine
        for name in ("int8-ptq-both", "int8-ptq-both:heads=int8")}
plain, heads = nets.values()
x = torch.randn(16384, 90, generator=torch.Generator().manual_seed(0))
print(f"fine network on 16384 points, on {machine_summary()}; int8 heads' kernel {int8_head_kernel()}")
with torch.inference_mode():
    a, b = plain(x), heads(x)
    print(f"  largest output difference {(a - b).abs().max():.3f} (outputs up to {a.abs().max():.1f})")
    t = time_pair(lambda: plain(x), lambda: heads(x), PairedProtocol(rounds=9, order="alternate"))
    print(f"  int8-ptq-both: {1e3 * t.reference_latency_s:.1f} ms")
    print(f"  int8-ptq-both:heads=int8: {1e3 * t.latency_s:.1f} ms; paired {t.summary()}")
    for name, net in nets.items():
        with torch.profiler.profile() as prof:
            net(x)
        print(f"{name}, one call:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
