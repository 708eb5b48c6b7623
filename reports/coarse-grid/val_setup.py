"""What the val-view scripts here share: a scene at a scale, its checkpoint, calibration rays and val views.

Run the scripts from the repository root (`python reports/coarse-grid/val_budget.py ...`); Python puts this
directory on the path, so they import this module.
"""
from typing import NamedTuple

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.model import ModelPair
from nerf_eval.render import Rays, RenderSettings
from nerf_eval.scenes import Scene, load_scene


class ValSetup(NamedTuple):
    scene: Scene
    pair: ModelPair
    calibration: Rays
    views: list[int]
    settings: RenderSettings


def val_setup(scene_spec: str, ckpt: str, scale: float) -> ValSetup:
    """Load SCENE at SCALE and CKPT, with `nerf-eval report`'s calibration batch; prints the header line."""
    scene = load_scene(scene_spec)
    scene = scene.rescaled(scale) if scale != 1.0 else scene
    setup = ValSetup(scene, load_checkpoint(ckpt).eval(), calibration_batch(scene, 4096),
                     list(scene.subset("val")), RenderSettings(white_bkgd=scene.white_bkgd))
    print(f"{scene_spec} val views {setup.views}, {setup.settings.n_coarse}+{setup.settings.n_fine} samples "
          f"asked, on {machine_summary()}", flush=True)
    return setup
