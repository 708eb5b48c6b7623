"""Loader for the tiny-NeRF demo layout: one `.npz` with `images` (N, H, W, 3), `poses` (N, 4, 4), `focal`.

The file carries no bounds or splits; near/far default to the Blender synthetic scenes' 2 and 6, and the
views are split deterministically like the built-in scenes (test every 10th from 5, val every 20th).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nerf_eval.errors import SceneError
from nerf_eval.scenes.blender import check_bounds
from nerf_eval.scenes.procedural import holdout_splits
from nerf_eval.scenes.scene import Scene

KEYS = ("images", "poses", "focal")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise SceneError(f"{path}: scene file not found")
    if path.is_dir():
        raise SceneError(f"{path}: is a directory, not an .npz file")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy and zipfile raise many types for damaged bytes (NotImplementedError, ...)
        raise SceneError(f"{path}: not a readable .npz archive ({type(e).__name__})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise SceneError(f"{path}: a single .npy array, not an .npz archive with {list(KEYS)}")
    with data:
        missing = [k for k in KEYS if k not in data.files]
        if missing:
            raise SceneError(f"{path}: missing keys {missing} (has {sorted(data.files)}); expected {list(KEYS)}")
        try:
            return {k: data[k] for k in KEYS}
        except Exception as e:  # as above, for a damaged member
            raise SceneError(f"{path}: corrupt array in .npz archive ({type(e).__name__})") from None


def load_npz(path: str | Path, near: float = 2.0, far: float = 6.0, white_bkgd: bool = True) -> Scene:
    """Load a tiny-NeRF `.npz`: images float in [0, 1] or uint8 (RGB, or RGBA composited on the background)."""
    path = Path(path)
    arrays = _read_arrays(path)
    images, poses, focal = arrays["images"], arrays["poses"], arrays["focal"]
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or 0 in images.shape:
        raise SceneError(f"{path}: 'images' has shape {images.shape}, expected (N, H, W, 3)")
    if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)):
        raise SceneError(f"{path}: 'poses' has shape {poses.shape}, expected (N, 4, 4)")
    if len(poses) != len(images):
        raise SceneError(f"{path}: {len(images)} images but {len(poses)} poses")
    if focal.size != 1:
        raise SceneError(f"{path}: 'focal' has shape {focal.shape}, expected a scalar")
    for name, arr in arrays.items():
        if arr.dtype.kind not in "uif" or not np.isfinite(arr).all():
            raise SceneError(f"{path}: '{name}' holds NaN, inf or non-numeric (or complex) values")
    focal_v = float(focal.reshape(()))
    if focal_v <= 0:
        raise SceneError(f"{path}: 'focal' must be positive, got {focal_v:g}")
    if images.dtype == np.uint8:
        imgs = images.astype(np.float32) / 255.0
    else:
        imgs = images.astype(np.float32)
        if imgs.min() < 0.0 or imgs.max() > 1.0:
            raise SceneError(f"{path}: float 'images' range [{imgs.min():g}, {imgs.max():g}], expected [0, 1]")
    if imgs.shape[-1] == 4:
        rgb, a = imgs[..., :3], imgs[..., 3:]
        imgs = rgb * a + (1.0 - a) if white_bkgd else rgb * a
    if poses.shape[1] == 3:
        poses = np.concatenate([poses, np.broadcast_to([[[0.0, 0.0, 0.0, 1.0]]], (len(poses), 1, 4))], 1)
    near, far = check_bounds(path, near, far)
    with np.errstate(over="ignore"):  # poses beyond float32 become inf, which Scene.check refuses in one line
        poses = poses.astype(np.float32)
    scene = Scene(name=path.stem, images=torch.from_numpy(np.ascontiguousarray(imgs)),
                 poses=torch.from_numpy(poses), focal=focal_v, near=float(near),
                 far=float(far), splits=holdout_splits(len(images)), white_bkgd=white_bkgd, source=f"npz:{path.name}")
    if not scene.splits["train"]:
        raise SceneError(f"{path}: {len(images)} views leave none for training after the held-out views")
    return scene.check(str(path))
