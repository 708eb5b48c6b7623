"""What int8 weights in the density and colour heads cost and save: python int8_heads.py.

`int8-ptq-both` keeps the heads (`alpha_linear`, `rgb_linear`) in fp32 and feeds them the dequantized
activations; `int8-ptq-both:heads=int8` gives them int8 weights (symmetric per output channel) that read
the activations' uint8 codes and write fp32 (`nerf_eval.compress.quantize.heads`). This script measures:
1. quality: both against fp32 on each scene's test views;
2. speed: the density head alone on 16384 points, dequantize + fp32 Linear against the library's int8
   head (`Int8WeightHead`, oneDNN's `qlinear_pointwise` where `nerf_eval.kernels.int8_head_kernel` says
   so), timed paired (`nerf_eval.measure.latency`, 30 rounds, the order alternating): medians and the ratio.
"""
import warnings

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.compress.quantize.heads import Int8WeightHead
from nerf_eval.evaluate import evaluate
from nerf_eval.hardware import machine_summary
from nerf_eval.kernels import int8_head_kernel
from nerf_eval.measure import calibration_batch
from nerf_eval.measure.latency import PairedProtocol, time_pair
from nerf_eval.render import RenderSettings
from nerf_eval.scenes import load_scene

warnings.simplefilter("ignore")  # torch warns that quantized tensors are deprecated at each creation
SCENES = (("object", "checkpoints/object/checkpoint.pt", 0.5),
          ("forward", "checkpoints/forward/checkpoint.pt", 0.5),
          ("../shared/data/nerf_llff_data/flower", "checkpoints/flower/checkpoint.pt", 0.25))
NAMES = ("int8-ptq-both", "int8-ptq-both:heads=int8")

print(f"on {machine_summary()}; int8 heads' kernel {int8_head_kernel()}")
for spec, ckpt, scale in SCENES:
    scene = load_scene(spec).rescaled(scale)
    pair = load_checkpoint(ckpt).eval()
    calibration = calibration_batch(scene, 4096)
    models = {"fp32": pair, **{n: get_compressor(n).compress(pair, calibration) for n in NAMES}}
    views = list(scene.subset("test"))
    settings = RenderSettings(white_bkgd=scene.white_bkgd)
    psnr = {name: evaluate(model, scene, views, settings, progress=False, with_flip=False).mean["psnr"]
            for name, model in models.items()}
    print(f"  {spec} ({len(views)} test views at {scene.width}x{scene.height}): fp32 {psnr['fp32']:.3f} dB; "
          + "; ".join(f"{n} {psnr[n] - psnr['fp32']:+.3f} dB" for n in NAMES), flush=True)

h = torch.quantize_per_tensor(torch.rand(16384, 256, generator=torch.Generator().manual_seed(0)) * 3, 3 / 255, 0,
                              torch.quint8)
linear = torch.nn.Linear(256, 1)
with torch.no_grad():
    linear.weight.copy_(torch.randn(1, 256, generator=torch.Generator().manual_seed(1)) * 0.05)
head = Int8WeightHead(linear)
with torch.inference_mode():
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t = time_pair(lambda: linear(h.dequantize()), lambda: head(h),
                      PairedProtocol(rounds=30, warmup=3, order="alternate"))
        print(f"  density head on 16384 points, {threads} thread(s): dequantize + fp32 Linear "
              f"{t.reference_latency_s * 1e6:.0f} us, int8 head (codes in, fp32 out) "
              f"{t.latency_s * 1e6:.0f} us ({t.summary()})")
