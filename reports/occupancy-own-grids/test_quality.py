"""Mean PSNR change against fp32 on test views: python test_quality.py SCENE CHECKPOINT SCALE NAMES [TEST_INDICES]

Compresses with each of NAMES (comma-separated) on `nerf-eval report`'s calibration batch and prints the mean
PSNR change over the test views (TEST_INDICES: positions in the test split, as `report --views`). Run from a
checkout's root to measure that checkout's code: the log runs it at 1ff2aa5 (one grid, stop 1e-4; through
`git worktree add /tmp/oldtree 1ff2aa5` and PYTHONPATH=/tmp/oldtree) and at the grids chosen here.
"""
import sys

import torch

import nerf_eval
from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.metrics import psnr
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene

scene = load_scene(sys.argv[1]).rescaled(float(sys.argv[3]))
pair = load_checkpoint(sys.argv[2]).eval()
calibration = calibration_batch(scene, 4096)
settings = RenderSettings(white_bkgd=scene.white_bkgd)
test = list(scene.subset("test"))
views = [test[int(i)] for i in sys.argv[5].split(",")] if len(sys.argv) > 5 else test
print(f"{sys.argv[1]} test views {views} at scale {sys.argv[3]}, code from {nerf_eval.__file__}, on {machine_summary()}")


def mean_psnr(model) -> float:
    with torch.inference_mode():
        images = [render_chunked(model, scene.rays(v), settings)["rgb"].reshape(scene.images[v].shape) for v in views]
    return sum(psnr(i, scene.images[v]) for i, v in zip(images, views)) / len(views)


reference = mean_psnr(pair)
for name in sys.argv[4].split(","):
    print(f"  {name:<46} PSNR change {mean_psnr(get_compressor(name).compress(pair, calibration)) - reference:+.3f} dB",
          flush=True)
