"""Copying an int8 network: python int8_copy.py.

Times `int8-ptq-both`'s fine network (object checkpoint) on 16384 points as made, after `ModelPair.copy_with`
(what an accelerator composed after int8 does), after a plain `copy.deepcopy` with torch's quantized engine
left as it is, and after `copy.deepcopy` with the engine set to oneDNN. torch re-packs quantized weights
when a module is copied, with the engine current at that moment. Timed paired against the network as made
(`nerf_eval.measure.latency`, 7 rounds, the order rotating): each one's median and its paired ratio.
"""
import copy
import warnings

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import int8_engine, machine_summary, quantized_engine
from nerf_eval.measure import calibration_batch
from nerf_eval.measure.latency import PairedProtocol, time_paired
from nerf_eval.scenes import load_scene

warnings.simplefilter("ignore")  # torch warns that quantized tensors are deprecated at each creation
scene = load_scene("object")
pair = load_checkpoint("checkpoints/object/checkpoint.pt").eval()
int8 = get_compressor("int8-ptq-both").compress(pair, calibration_batch(scene, 4096))
nets = {"as made": int8.fine, "ModelPair.copy_with": int8.copy_with().fine,
        f"copy.deepcopy, engine {torch.backends.quantized.engine}": copy.deepcopy(int8.fine)}
with quantized_engine("onednn"):
    nets["copy.deepcopy, engine onednn"] = copy.deepcopy(int8.fine)
x = torch.randn(16384, 90, generator=torch.Generator().manual_seed(0))
print(f"int8 fine network on 16384 points, int8 engine {int8_engine()}, on {machine_summary()}")
reference, *others = nets
with torch.inference_mode():
    timings = time_paired(lambda: nets[reference](x), {n: (lambda net=nets[n]: net(x)) for n in others},
                          PairedProtocol(rounds=7, order="alternate"))
print(f"  {reference}: {1e3 * timings[others[0]].reference_latency_s:.1f} ms")
for n, t in timings.items():
    print(f"  {n}: {1e3 * t.latency_s:.1f} ms; as made / this {t.summary()}")
