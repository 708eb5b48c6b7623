"""A tiny scene and checkpoint for testing compressors and the plugin itself in seconds.

The scene's images are the tiny fp32 model's own renders (8x8 pixels, 8+8 samples), so fp32 scores
about 59 dB (only PNG rounding differs) and any harm a compressor does shows as a clear PSNR drop.

    paths = write_tiny_target(tmp_path)
    pytester.makeini(tiny_ini(paths))

Importing this module also loads the metric libraries (which `nerf_eval.metrics` imports lazily) into the
calling process: pytester's in-process runs unload the modules a run imported, and a C extension among
them cannot be loaded twice in one process, so a later test that measured quality failed to import it.
It loads torch's compiler stack (`torch._dynamo`) for the same reason: some torch versions (2.11) import
it lazily on a first FX trace or seeded call, and it registers an operator library that cannot be
registered twice, so every torch call that imported it again after an in-process run failed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import flip_evaluator  # noqa: F401  (see the module docstring)
import skimage.metrics  # noqa: F401
import torch
import torch._dynamo  # noqa: F401  (see the module docstring)

from nerf_eval.checkpoint import save_checkpoint
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes import load_scene
from nerf_eval.scenes.blender import write_blender
from nerf_eval.scenes.procedural import make_scene

TINY_CONFIG = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)
TINY_SAMPLES = (8, 8)


def tiny_pair(seed: int = 0) -> ModelPair:
    """A seeded tiny pair whose density bias makes it render opaque, coloured surfaces."""
    pair = ModelPair.create(TINY_CONFIG, seed=seed)
    with torch.no_grad():
        for net in pair.networks().values():
            net.alpha_linear.bias.fill_(3.0)
    return pair.eval()


def write_tiny_target(directory: str | Path, size: int = 8, seed: int = 0,
                      recorded_scene: str | None = None) -> dict[str, Path]:
    """Write `scene/` (Blender layout, the built-in object scene's cameras) and `tiny.pt`, which records
    that it was trained on that scene (as `nerf-eval train` does), or on `recorded_scene` when given."""
    directory = Path(directory)
    pair = tiny_pair(seed)
    scene, _ = make_scene("object", size=size)
    settings = RenderSettings(n_coarse=TINY_SAMPLES[0], n_fine=TINY_SAMPLES[1])
    images = [render_chunked(pair, scene.rays(i), settings)["rgb"].reshape(size, size, 3)
              for i in range(scene.images.shape[0])]
    scene = dataclasses.replace(scene, images=torch.stack(images).clamp(0, 1))
    write_blender(scene, directory / "scene")
    recorded = recorded_scene or load_scene(directory / "scene").source
    save_checkpoint(directory / "tiny.pt", pair, meta={"scene": recorded}, overwrite=True)
    return {"scene": directory / "scene", "checkpoint": directory / "tiny.pt"}


def tiny_ini(paths: dict[str, Path]) -> str:
    """An ini section pointing the plugin at the tiny target with the cheapest settings."""
    return "\n".join([
        "[pytest]",
        f"nerf_scene = {paths['scene']}",
        f"nerf_checkpoint = {paths['checkpoint']}",
        f"nerf_samples = {TINY_SAMPLES[0]},{TINY_SAMPLES[1]}",
        "nerf_views = 1",
        "nerf_scale = 1",
        "nerf_latency_rays = 32",
        "nerf_latency_rounds = 1",
        "nerf_calibration_rays = 64",
        "",
    ])
