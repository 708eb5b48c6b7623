"""What int8 heads cost where oneDNN's int8 head is missing or clips: python fallback.py [TARGETS] [RAYS].

There (`nerf_eval.kernels.int8_head_kernel()` == "fp32", e.g. AVX2 without VNNI) an int8-weight head
dequantizes its input and runs its dequantized weights in fp32, the same work as an fp32 head. This forces
that path on this machine and times, paired against fp32 on the same rays of each target's first test view
at one thread (`nerf_eval.measure.render_latency.time_renders`, 15 rounds): int8 with fp32 heads, with int8
heads through oneDNN, and with int8 heads through the fp32 path."""
import sys
import warnings

import torch

from nerf_eval import kernels
from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.compress.quantize.heads import Int8WeightHead
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.measure.latency import PairedProtocol
from nerf_eval.measure.render_latency import time_renders
from nerf_eval.memory import keep_freed_memory
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene

warnings.simplefilter("ignore")  # torch warns that quantized tensors are deprecated at each creation
keep_freed_memory()
SCENES = {"flower": "../shared/data/nerf_llff_data/flower"}
targets = sys.argv[1].split(",") if len(sys.argv) > 1 else ["object", "forward", "flower"]
n_rays = int(sys.argv[2]) if len(sys.argv) > 2 else 128
print(machine_summary(), f"int8 head kernel here: {kernels.int8_head_kernel()}", flush=True)
for target in targets:
    torch.manual_seed(0)
    scene = load_scene(SCENES.get(target, target))
    pair = load_checkpoint(f"checkpoints/{target}/checkpoint.pt").eval()
    cal = calibration_batch(scene, 4096)
    rays = scene.rays(list(scene.subset("test"))[0])[:n_rays]
    settings = RenderSettings(white_bkgd=scene.white_bkgd)
    models = {"int8-ptq-both:heads=fp32": get_compressor("int8-ptq-both:heads=fp32").compress(pair, cal),
              "int8-ptq-both (int8 heads, oneDNN)": get_compressor("int8-ptq-both").compress(pair, cal)}
    fallback = get_compressor("int8-ptq-both").compress(pair, cal)
    original = kernels.int8_head_kernel
    kernels.int8_head_kernel = lambda: "fp32"
    try:
        for m in (m for net in fallback.networks().values() for m in net.modules()):
            if isinstance(m, Int8WeightHead):
                m.forget_codes()
        with torch.inference_mode():
            render_chunked(fallback, rays[:8], settings)  # derives the fp32 path's codes
    finally:
        kernels.int8_head_kernel = original
    models["int8-ptq-both (int8 heads, fp32 path)"] = fallback
    with torch.inference_mode():
        a = render_chunked(models["int8-ptq-both (int8 heads, oneDNN)"], rays, settings)["rgb"]
        b = render_chunked(fallback, rays, settings)["rgb"]
    timings = time_renders(pair, models, rays, settings, PairedProtocol(rounds=15, warmup=2), threads=1)
    for name, t in timings.items():
        print(f"{target}, {n_rays} rays, 1 thread: {name:40s} {t.summary()}", flush=True)
    print(f"{target}: largest rgb difference between the two int8-head paths {float((a - b).abs().max()):.2e}",
          flush=True)
