"""The ray batches every measurement uses: one definition, so `nerf-eval report`, autocompress and the
plugin calibrate and time on the same rays for the same settings.

- calibration: seeded rays drawn uniformly from the training views (what compressors may look at);
- latency: seeded rays drawn uniformly from the test views, so the timed batch has the scene's mix of
  empty space and surfaces (the first rows of one view are mostly background, which flatters any
  method that skips empty space).
"""

from __future__ import annotations

from nerf_eval.measure.spec import CALIBRATION_SEED, LATENCY_SEED
from nerf_eval.render import Rays
from nerf_eval.scenes.scene import Scene


def calibration_batch(scene: Scene, n_rays: int, seed: int = CALIBRATION_SEED) -> Rays:
    """`n_rays` seeded rays from the training views (from every view when a scene has no train split)."""
    split = "train" if scene.splits.get("train") else "all"
    return scene.sample_rays(n_rays, split, seed=seed)


def latency_batch(scene: Scene, n_rays: int, seed: int = LATENCY_SEED) -> Rays:
    """`n_rays` seeded rays from the test views (from every view when a scene has no test split)."""
    split = "test" if scene.splits.get("test") else "all"
    return scene.sample_rays(n_rays, split, seed=seed)
