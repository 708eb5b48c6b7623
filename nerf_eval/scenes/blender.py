"""Loader for the Blender synthetic layout: `transforms_{train,val,test}.json` plus RGBA PNG images.

Extra keys this project writes (and reads when present): `near`, `far`, `white_background` at the top
level and `depth_file_path` (a float32 `.npy` z-depth map, inf on background) per frame.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from nerf_eval.errors import SceneError
from nerf_eval.scenes.scene import Scene

SPLITS = ("train", "val", "test")


def read_json(path: Path) -> dict:
    """Parse a JSON file; a one-line SceneError for a missing or malformed file."""
    if not path.exists():
        raise SceneError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SceneError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SceneError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise SceneError(f"{path}: expected a JSON object at the top level")
    return data


def _image_path(root: Path, file_path: str) -> Path:
    p = root / file_path
    if p.suffix == "":
        p = p.with_suffix(".png")
    return p


def read_image(path: Path, white_bkgd: bool) -> np.ndarray:
    """An image as float32 RGB in [0, 1]; RGBA is composited on white (or black) by its alpha."""
    if not path.exists():
        raise SceneError(f"{path}: image file not found")
    try:
        img = iio.imread(path)
    except Exception as e:  # imageio raises many types for broken files
        raise SceneError(f"{path}: cannot decode image ({type(e).__name__})") from None
    img = np.asarray(img, dtype=np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    if img.shape[-1] == 4:
        rgb, a = img[..., :3], img[..., 3:]
        img = rgb * a + (1.0 - a) if white_bkgd else rgb * a
    return img[..., :3]


def load_blender(root: str | Path, white_bkgd: bool = True, half_res: bool = False,
                 near: float | None = None, far: float | None = None) -> Scene:
    """Load a Blender-layout scene directory (all three splits that exist; train is required)."""
    root = Path(root)
    if not root.is_dir():
        raise SceneError(f"{root}: scene directory not found")
    if not (root / "transforms_train.json").exists():
        raise SceneError(f"{root}: no transforms_train.json; not a Blender-layout scene")
    images, poses, depths, splits = [], [], [], {}
    angle = None
    meta_near = meta_far = None
    shape = None
    for split in SPLITS:
        jpath = root / f"transforms_{split}.json"
        if not jpath.exists():
            continue
        meta = read_json(jpath)
        if "camera_angle_x" not in meta or "frames" not in meta:
            raise SceneError(f"{jpath}: missing 'camera_angle_x' or 'frames'")
        angle = float(meta["camera_angle_x"])
        meta_near, meta_far = meta.get("near", meta_near), meta.get("far", meta_far)
        white_bkgd = bool(meta.get("white_background", white_bkgd))
        start = len(images)
        for k, frame in enumerate(meta["frames"]):
            if "file_path" not in frame or "transform_matrix" not in frame:
                raise SceneError(f"{jpath}: frame {k} lacks 'file_path' or 'transform_matrix'")
            pose = np.asarray(frame["transform_matrix"], dtype=np.float32)
            if pose.shape != (4, 4) or not np.isfinite(pose).all():
                raise SceneError(f"{jpath}: frame {k} transform_matrix is not a finite 4x4 matrix")
            ipath = _image_path(root, frame["file_path"])
            img = read_image(ipath, white_bkgd)
            if shape is None:
                shape = img.shape
            elif img.shape != shape:
                raise SceneError(f"{ipath}: image is {img.shape[1]}x{img.shape[0]}, "
                                 f"others are {shape[1]}x{shape[0]} (mixed sizes)")
            images.append(img)
            poses.append(pose)
            if "depth_file_path" in frame:
                dpath = root / frame["depth_file_path"]
                if not dpath.exists():
                    raise SceneError(f"{dpath}: depth file not found")
                try:
                    depth = np.load(dpath, allow_pickle=False).astype(np.float32)
                except (ValueError, OSError, EOFError) as e:
                    raise SceneError(f"{dpath}: not a readable .npy depth map ({type(e).__name__})") from None
                if depth.shape != img.shape[:2]:
                    raise SceneError(f"{dpath}: depth map has shape {depth.shape}, image is {img.shape[:2]}")
                depths.append(depth)
        splits[split] = list(range(start, len(images)))
    if not images:
        raise SceneError(f"{root}: no frames in any transforms file")
    h, w = shape[:2]
    focal = 0.5 * w / math.tan(0.5 * angle)
    depth_t = torch.from_numpy(np.stack(depths)) if len(depths) == len(images) else None
    scene = Scene(name=root.name, images=torch.from_numpy(np.stack(images)), poses=torch.from_numpy(np.stack(poses)),
                  focal=focal, near=float(near if near is not None else (meta_near if meta_near is not None else 2.0)),
                  far=float(far if far is not None else (meta_far if meta_far is not None else 6.0)),
                  splits=splits, white_bkgd=white_bkgd, depths=depth_t, source=f"blender:{root.resolve().name}",
                  meta={"camera_angle_x": angle})
    return scene.rescaled(0.5) if half_res else scene


def write_blender(scene: Scene, out: str | Path) -> Path:
    """Write a Scene in the Blender layout (RGB PNG, depth `.npy`, near/far/background in the JSON)."""
    out = Path(out)
    angle = 2.0 * math.atan(0.5 * scene.width / scene.focal)
    for split in SPLITS:
        if split not in scene.splits:
            continue
        (out / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for k, i in enumerate(scene.splits[split]):
            stem = f"{split}/r_{k}"
            rgb = (scene.images[i].clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
            iio.imwrite(out / f"{stem}.png", rgb)
            frame = {"file_path": f"./{stem}", "transform_matrix": scene.poses[i].tolist()}
            if scene.depths is not None:
                np.save(out / f"{stem}_depth.npy", scene.depths[i].numpy().astype(np.float32))
                frame["depth_file_path"] = f"./{stem}_depth.npy"
            frames.append(frame)
        doc = {"camera_angle_x": angle, "near": scene.near, "far": scene.far,
               "white_background": scene.white_bkgd, "frames": frames}
        (out / f"transforms_{split}.json").write_text(json.dumps(doc, indent=1))
    return out
