"""Copying an int8 network: python int8_copy.py.

Times `int8-ptq-both`'s fine network (object checkpoint) on 16384 points as made, after `ModelPair.copy_with`
(what an accelerator composed after int8 does), after a plain `copy.deepcopy` with torch's quantized engine
left as it is, and after `copy.deepcopy` with the engine set to oneDNN. torch re-packs quantized weights
when a module is copied, with the engine current at that moment.
"""
import copy
import statistics
import time
import warnings

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import int8_engine, machine_summary, quantized_engine
from nerf_eval.measure import calibration_batch
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
times = {n: [] for n in nets}
print(f"int8 fine network on 16384 points, int8 engine {int8_engine()}, on {machine_summary()}")
with torch.inference_mode():
    for net in nets.values():
        net(x)
    for r in range(7):
        for n in list(nets)[::1 if r % 2 == 0 else -1]:
            start = time.perf_counter()
            nets[n](x)
            times[n].append(time.perf_counter() - start)
for n in nets:
    print(f"  {n}: {1e3 * statistics.median(times[n]):.1f} ms")
