"""Loader for the Blender synthetic layout: `transforms_{train,val,test}.json` plus RGBA PNG images.

Extra keys this project writes (and reads when present): `near`, `far`, `white_background` at the top
level and `depth_file_path` (a float32 `.npy` z-depth map, inf on background) per frame.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path, PurePosixPath

import imageio.v3 as iio
import numpy as np
import torch

from nerf_eval.errors import SceneError
from nerf_eval.interrupt import stop_point
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


def _relative_path(value: object) -> bool:
    """Whether a transforms file's path entry names a file below the scene: a non-empty relative path (an
    absolute one would read whatever it names, wherever the scene is)."""
    return (isinstance(value, str) and bool(value.strip("./")) and not PurePosixPath(value).is_absolute()
            and not Path(value).is_absolute())


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: object) -> float | None:
    """`value` as a float when it is a finite real number (not a string, null, bool, NaN or an int too
    large for a float); None otherwise."""
    if not _is_number(value):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _finite_number(jpath: Path, key: str, value: object) -> float:
    """A JSON value that must be a finite real number; a one-line SceneError otherwise."""
    f = _finite(value)
    if f is None:
        raise SceneError(f"{jpath}: '{key}' is {json.dumps(value)[:40]}, expected a finite number")
    return f


def check_bounds(where: object, near: object, far: object) -> tuple[float, float]:
    """near and far as floats after checking 0 <= near < far (both finite numbers)."""
    values = []
    for key, value in (("near", near), ("far", far)):
        f = _finite(value)
        if f is None:
            raise SceneError(f"{where}: {key} is {str(value)[:40]}, expected a finite number")
        values.append(f)
    near_f, far_f = values
    if not 0.0 <= near_f < far_f:
        raise SceneError(f"{where}: need 0 <= near < far, got near={near_f:g}, far={far_f:g}")
    return near_f, far_f


def read_image(path: Path, white_bkgd: bool) -> np.ndarray:
    """An image as float32 RGB in [0, 1]; grey is repeated, and an alpha channel (RGBA, grey+alpha)
    composites the colour on white (or black)."""
    stop_point()  # loading a scene is a loop of these
    if not path.exists():
        raise SceneError(f"{path}: image file not found")
    if path.is_dir():
        raise SceneError(f"{path}: is a directory, not an image file")
    try:
        with warnings.catch_warnings():  # an undecodable file makes imageio try (and import) deprecated plugins
            warnings.simplefilter("ignore", DeprecationWarning)
            img = iio.imread(path)
    except Exception as e:  # imageio raises many types for broken files
        raise SceneError(f"{path}: cannot decode image ({type(e).__name__})") from None
    img = np.asarray(img)
    if img.dtype.kind not in "uif" or img.ndim not in (2, 3) or 0 in img.shape:
        raise SceneError(f"{path}: decoded to a {img.dtype} array of shape {img.shape}, not an RGB(A) or grey image")
    if img.ndim == 3 and img.shape[-1] not in (1, 2, 3, 4):
        raise SceneError(f"{path}: has {img.shape[-1]} channels, expected grey, grey+alpha, RGB or RGBA")
    if img.dtype.kind == "f":
        img = img.astype(np.float32)
    else:
        img = img.astype(np.float32) / (65535.0 if img.dtype.itemsize >= 2 else 255.0)
    if not np.isfinite(img).all() or img.min() < 0.0 or img.max() > 1.0:
        raise SceneError(f"{path}: pixel values outside [0, 1] or not finite")
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] in (2, 4):  # colour + alpha
        rgb, a = img[..., :-1], img[..., -1:]
        img = rgb * a + (1.0 - a) if white_bkgd else rgb * a
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, -1)
    return np.ascontiguousarray(img[..., :3])


def _frame_pose(jpath: Path, k: int, value: object) -> np.ndarray:
    try:
        pose = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        pose = None
    if pose is None or pose.shape != (4, 4) or not np.isfinite(pose).all() or any(
            isinstance(x, bool) for row in value for x in (row if isinstance(row, list) else [row])):
        raise SceneError(f"{jpath}: frame {k} transform_matrix is not a finite 4x4 matrix of numbers")
    if abs(np.linalg.det(pose[:3, :3])) < 1e-9:
        raise SceneError(f"{jpath}: frame {k} transform_matrix has a degenerate (non-invertible) rotation")
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused here without a warning
        pose32 = pose.astype(np.float32)
    if not np.isfinite(pose32).all():
        raise SceneError(f"{jpath}: frame {k} transform_matrix holds values beyond float32's range")
    return pose32


def _read_depth(dpath: Path, shape: tuple[int, ...]) -> np.ndarray:
    if not dpath.is_file():
        raise SceneError(f"{dpath}: depth file not found")
    try:
        depth = np.load(dpath, allow_pickle=False)
    except Exception as e:  # np.load raises many types for damaged bytes (SyntaxError from a garbled header, ...)
        raise SceneError(f"{dpath}: not a readable .npy depth map ({type(e).__name__})") from None
    if not isinstance(depth, np.ndarray) or depth.dtype.kind not in "uif":
        raise SceneError(f"{dpath}: not a numeric .npy depth map")
    if depth.shape != shape:
        raise SceneError(f"{dpath}: depth map has shape {depth.shape}, image is {shape}")
    depth = depth.astype(np.float32)
    if np.isnan(depth).any() or (depth < 0).any():
        raise SceneError(f"{dpath}: depth map holds NaN or negative values (inf marks background)")
    return depth


def load_blender(root: str | Path, white_bkgd: bool | None = None, half_res: bool = False,
                 near: float | None = None, far: float | None = None) -> Scene:
    """Load a Blender-layout scene directory (all three splits that exist; train is required).

    Every value is checked (types, finiteness, ranges), so a malformed file gives a one-line SceneError
    naming it, never a Python traceback or a silently meaningless scene. `white_bkgd` composites RGBA
    images on white (True) or black; None takes the scene's own `white_background` field where its
    transforms file has one, else white (the Blender scenes' convention). A value given wins over the file.
    """
    root = Path(root)
    explicit_bkgd = white_bkgd is not None
    white_bkgd = True if white_bkgd is None else bool(white_bkgd)
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
        angle = _finite_number(jpath, "camera_angle_x", meta["camera_angle_x"])
        if not 0.0 < angle < math.pi:
            raise SceneError(f"{jpath}: 'camera_angle_x' is {angle:g} radians, expected a field of view in (0, pi)")
        for key in ("near", "far"):
            if key in meta:
                _finite_number(jpath, key, meta[key])
        meta_near, meta_far = meta.get("near", meta_near), meta.get("far", meta_far)
        if "white_background" in meta:
            wb = meta["white_background"]
            if not isinstance(wb, bool) and wb not in (0, 1):
                raise SceneError(f"{jpath}: 'white_background' is {json.dumps(wb)[:40]}, expected true or false")
            if not explicit_bkgd:
                white_bkgd = bool(wb)
        frames = meta["frames"]
        if not isinstance(frames, list):
            raise SceneError(f"{jpath}: 'frames' is a {type(frames).__name__}, expected a list of frames")
        if split == "train" and not frames:
            raise SceneError(f"{jpath}: 'frames' is empty; the train split needs at least one view")
        start = len(images)
        for k, frame in enumerate(frames):
            if not isinstance(frame, dict):
                raise SceneError(f"{jpath}: frame {k} is a {type(frame).__name__}, expected an object")
            if "file_path" not in frame or "transform_matrix" not in frame:
                raise SceneError(f"{jpath}: frame {k} lacks 'file_path' or 'transform_matrix'")
            if not _relative_path(frame["file_path"]):
                raise SceneError(f"{jpath}: frame {k} file_path is {json.dumps(frame['file_path'])[:40]}, "
                                 "expected a relative image path")
            pose = _frame_pose(jpath, k, frame["transform_matrix"])
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
                if not _relative_path(frame["depth_file_path"]):
                    raise SceneError(f"{jpath}: frame {k} depth_file_path is "
                                     f"{json.dumps(frame['depth_file_path'])[:40]}, expected a relative path")
                depths.append(_read_depth(root / frame["depth_file_path"], img.shape[:2]))
        splits[split] = list(range(start, len(images)))
    if not images:
        raise SceneError(f"{root}: no frames in any transforms file")
    h, w = shape[:2]
    focal = 0.5 * w / math.tan(0.5 * angle)
    near_v = near if near is not None else (meta_near if meta_near is not None else 2.0)
    far_v = far if far is not None else (meta_far if meta_far is not None else 6.0)
    near_v, far_v = check_bounds(root, near_v, far_v)
    depth_t = torch.from_numpy(np.stack(depths)) if len(depths) == len(images) else None
    scene = Scene(name=root.name, images=torch.from_numpy(np.stack(images)), poses=torch.from_numpy(np.stack(poses)),
                  focal=focal, near=near_v, far=far_v,
                  splits=splits, white_bkgd=white_bkgd, depths=depth_t, source=f"blender:{root.resolve().name}",
                  meta={"camera_angle_x": angle})
    scene.check(str(root))
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
