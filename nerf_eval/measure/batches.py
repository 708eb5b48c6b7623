"""The ray batches every measurement uses: one definition, so `nerf-eval report`, autocompress and the
plugin calibrate and time on the same rays for the same settings.

- calibration: seeded rays drawn uniformly from the training views (what compressors may look at);
- latency: seeded rays drawn uniformly from the test views, so the timed batch has the scene's mix of
  empty space and surfaces (the first rows of one view are mostly background, which flatters any
  method that skips empty space).
"""

from __future__ import annotations

from nerf_eval.render import Rays
from nerf_eval.scenes.scene import Scene

CALIBRATION_SEED = 0
LATENCY_SEED = 1


def calibration_batch(scene: Scene, n_rays: int) -> Rays:
    """`n_rays` seeded rays from the training views (from every view when a scene has no train split)."""
    split = "train" if scene.splits.get("train") else "all"
    return scene.sample_rays(n_rays, split, seed=CALIBRATION_SEED)


def latency_batch(scene: Scene, n_rays: int) -> Rays:
    """`n_rays` seeded rays from the test views (from every view when a scene has no test split)."""
    split = "test" if scene.splits.get("test") else "all"
    return scene.sample_rays(n_rays, split, seed=LATENCY_SEED)
