"""What `val_margin.py` and `val_stop.py` share: the command line `SCENE CHECKPOINT SCALE BASE[,BASE...]`, the
scene's val views rendered by fp32, and for a model the points each network was queried at per ray and its
PSNR / SSIM drops against fp32 on those views. Imported from the scripts' own directory (Python puts a
script's directory first on its path)."""
import sys

import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.metrics import psnr, ssim
from nerf_eval.model import ModelPair
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene

scene_spec, ckpt, scale, bases = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4].split(",")
scene = load_scene(scene_spec)
scene = scene.rescaled(scale) if scale != 1.0 else scene
pair = load_checkpoint(ckpt).eval()
calibration = calibration_batch(scene, 4096)
settings = RenderSettings(white_bkgd=scene.white_bkgd)
views = list(scene.subset("val"))
print(f"{scene_spec} at scale {scale}, val views {views}, {settings.n_coarse}+{settings.n_fine} samples asked, "
      f"on {machine_summary()}", flush=True)


def render_view(model: ModelPair, view: int) -> torch.Tensor:
    with torch.inference_mode():
        return render_chunked(model, scene.rays(view), settings)["rgb"].reshape(scene.images[view].shape)


reference = [render_view(pair, v) for v in views]
ref_metrics = [(psnr(r, scene.images[v]), ssim(r, scene.images[v])) for r, v in zip(reference, views)]


def measured(model: ModelPair) -> str:
    """Renders the val views with `model`; "points/ray coarse C fine F  PSNR drop ... SSIM drop ..."."""
    counts = {"coarse": 0, "fine": 0}

    def count(name):
        def hook(module, args):
            counts[name] += args[0].shape[0]
        return hook

    hooks = [net.register_forward_pre_hook(count(n)) for n, net in model.networks().items()]
    images = [render_view(model, v) for v in views]
    for h in hooks:
        h.remove()
    rays = len(views) * scene.height * scene.width
    m = [(psnr(i, scene.images[v]), ssim(i, scene.images[v])) for i, v in zip(images, views)]
    drops = [a[0] - b[0] for a, b in zip(ref_metrics, m)]
    sd = sum(a[1] - b[1] for a, b in zip(ref_metrics, m)) / len(m)
    return (f"points/ray coarse {counts['coarse'] / rays:5.1f} fine {counts['fine'] / rays:6.1f}  "
            f"PSNR drop {sum(drops) / len(drops):+.3f} dB (worst view {max(drops):+.3f})  SSIM drop {sd:+.5f}")
