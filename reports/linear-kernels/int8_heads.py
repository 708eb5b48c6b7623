"""What int8 weights in the density and colour heads would cost and save: python int8_heads.py.

`int8-ptq-both` keeps the heads (`alpha_linear`, `rgb_linear`) in fp32 and feeds them the dequantized
activations. oneDNN has a Linear that takes the uint8 codes and int8 weights and writes fp32
(`torch.ops.onednn.qlinear_pointwise` with an fp32 output dtype), which would skip the dequantize pass but
puts the heads' weights on an int8 grid. This script measures both sides without changing the library:
1. quality: the int8 network with its heads' weights fake-quantized (symmetric per output channel,
   [-127, 127], what the op would compute up to fp32 rounding), against fp32 and against `int8-ptq-both`,
   on each scene's test views;
2. speed: the density head on 16384 points, dequantize + fp32 Linear against the fp32-output int8 op,
   timed paired (`nerf_eval.measure.latency`, 30 rounds, the order alternating): medians and the ratio.
"""
import warnings

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.evaluate import evaluate
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.measure.latency import PairedProtocol, time_pair
from nerf_eval.render import RenderSettings
from nerf_eval.scenes import load_scene

warnings.simplefilter("ignore")  # torch warns that quantized tensors are deprecated at each creation
SCENES = (("object", "checkpoints/object/checkpoint.pt", 0.5),
          ("forward", "checkpoints/forward/checkpoint.pt", 0.5),
          ("../shared/data/nerf_llff_data/flower", "checkpoints/flower/checkpoint.pt", 0.25))


def int8_weight_heads(pair):
    out = pair.copy_with()
    for net in out.networks().values():
        for name in ("alpha_linear", "rgb_linear"):
            layer = net.get_submodule(name)
            scale = layer.weight.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127
            layer.weight.data = torch.round(layer.weight / scale).clamp(-127, 127) * scale
    return out


print(f"on {machine_summary()}")
for spec, ckpt, scale in SCENES:
    scene = load_scene(spec).rescaled(scale)
    pair = load_checkpoint(ckpt).eval()
    int8 = get_compressor("int8-ptq-both").compress(pair, calibration_batch(scene, 4096))
    views = list(scene.subset("test"))
    settings = RenderSettings(white_bkgd=scene.white_bkgd)
    psnr = {name: evaluate(model, scene, views, settings, progress=False, with_flip=False).mean["psnr"]
            for name, model in (("fp32", pair), ("int8-ptq-both", int8), ("int8 heads", int8_weight_heads(int8)))}
    print(f"  {spec} ({len(views)} test views at {scene.width}x{scene.height}): fp32 {psnr['fp32']:.3f} dB; "
          f"int8-ptq-both {psnr['int8-ptq-both'] - psnr['fp32']:+.3f} dB; with int8 head weights "
          f"{psnr['int8 heads'] - psnr['fp32']:+.3f} dB", flush=True)

ops = torch.ops.onednn
h = torch.quantize_per_tensor(torch.rand(16384, 256, generator=torch.Generator().manual_seed(0)) * 3, 3 / 255, 0,
                              torch.quint8)
codes = h.int_repr()
w, b = torch.randn(1, 256) * 0.05, torch.randn(1)
w_scale = w.abs().amax(1) / 127
packed = ops.qlinear_prepack(torch.round(w / w_scale[:, None]).clamp(-127, 127).to(torch.int8), [16384, 256])
zero = torch.zeros(1, dtype=torch.long)


with torch.inference_mode():
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t = time_pair(lambda: torch.nn.functional.linear(h.dequantize(), w, b),
                      lambda: ops.qlinear_pointwise(codes, 3 / 255, 0, packed, w_scale, zero, b, 1.0, 0,
                                                    torch.float32, "none", [], ""),
                      PairedProtocol(rounds=30, warmup=3, order="alternate"))
        print(f"  density head on 16384 points, {threads} thread(s): dequantize + fp32 Linear "
              f"{t.reference_latency_s * 1e6:.0f} us, int8 codes -> fp32 (onednn.qlinear_pointwise) "
              f"{t.latency_s * 1e6:.0f} us ({t.summary()})")
