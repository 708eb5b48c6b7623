"""Loader for LLFF captures (`poses_bounds.npy` + `images[_F]/`), with nerf-pytorch's `load_llff_data` semantics.

`poses_bounds.npy` holds one row of 17 numbers per image: a 3x5 matrix [R | t | hwf] in LLFF's
[down, right, back] axis order, then the near and far scene depth bounds. Poses are turned into the
OpenGL [right, up, back] order, the scene is scaled so the nearest bound is 1/bd_factor, and poses are
recentred on their average. Forward-facing scenes are rendered in NDC (near 0, far 1), as in the paper.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nerf_eval.errors import SceneError, first_line
from nerf_eval.rays import NDC_NEAR, get_rays, ndc_rays
from nerf_eval.scenes.blender import read_image
from nerf_eval.scenes.scene import Scene

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def view_matrix(z: np.ndarray, up: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """A 3x4 camera-to-world whose back axis is `z`, orthogonalised against `up`, placed at `pos`."""
    vec2 = _normalize(z)
    vec0 = _normalize(np.cross(up, vec2))
    vec1 = _normalize(np.cross(vec2, vec0))
    return np.stack([vec0, vec1, vec2, pos], 1)


def poses_avg(poses: np.ndarray) -> np.ndarray:
    """The average camera (3x4) of poses (N, 3, >=4): mean centre, summed back and up axes."""
    center = poses[:, :3, 3].mean(0)
    return view_matrix(poses[:, :3, 2].sum(0), poses[:, :3, 1].sum(0), center)


def recenter_poses(poses: np.ndarray) -> np.ndarray:
    """Express poses (N, 3, 4) in the frame of their average camera (which becomes the identity)."""
    bottom = np.array([[0.0, 0.0, 0.0, 1.0]])
    avg = np.concatenate([poses_avg(poses), bottom], 0)
    full = np.concatenate([poses[:, :3, :4], np.broadcast_to(bottom, (len(poses), 1, 4))], 1)
    return (np.linalg.inv(avg) @ full)[:, :3, :4]


def _read_poses_bounds(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Poses (N, 3, 5) in LLFF axis order and bounds (N, 2) from `poses_bounds.npy`."""
    if not path.exists():
        raise SceneError(f"{path}: file not found; not an LLFF scene")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # np.load raises many types for damaged bytes (SyntaxError from a garbled header, ...)
        raise SceneError(f"{path}: not a readable .npy array ({first_line(e)[:120]})") from None
    if arr.ndim != 2 or arr.shape[1] != 17 or arr.shape[0] == 0:
        raise SceneError(f"{path}: shape {tuple(arr.shape)}, expected (N, 17) rows of 3x5 pose + 2 bounds")
    if arr.dtype.kind not in "uif" or not np.isfinite(arr).all():
        raise SceneError(f"{path}: holds NaN, inf or non-numeric values")
    bounds = arr[:, 15:].astype(np.float64)
    if bounds.min() <= 0:
        raise SceneError(f"{path}: depth bounds must be positive, smallest is {bounds.min():g}")
    bad = np.nonzero(bounds[:, 0] >= bounds[:, 1])[0]
    if bad.size:
        k = int(bad[0])
        raise SceneError(f"{path}: row {k} has near bound {bounds[k, 0]:g} >= far bound {bounds[k, 1]:g}")
    poses = arr[:, :15].reshape(-1, 3, 5).astype(np.float64)
    focal = poses[:, 2, 4]
    if (focal <= 0).any():
        k = int(np.nonzero(focal <= 0)[0][0])
        raise SceneError(f"{path}: row {k} has focal length {focal[k]:g}; it must be positive (pixels)")
    det = np.abs(np.linalg.det(poses[:, :3, :3]))
    if (det < 1e-9).any():
        k = int(np.nonzero(det < 1e-9)[0][0])
        raise SceneError(f"{path}: row {k} has a degenerate (non-invertible) camera rotation")
    return poses, bounds


def _image_dir(root: Path, factor: int) -> tuple[Path, int]:
    """The folder to read and the factor still to apply: `images_{factor}` if present, else `images`."""
    if factor > 1 and (root / f"images_{factor}").is_dir():
        return root / f"images_{factor}", 1
    if (root / "images").is_dir():
        return root / "images", factor
    wanted = f"images_{factor}/ or images/" if factor > 1 else "images/"
    raise SceneError(f"{root}: no image folder ({wanted} not found)")


def _downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter (area) downsampling of an (H, W, 3) image by an integer factor."""
    h, w = max(1, round(img.shape[0] / factor)), max(1, round(img.shape[1] / factor))
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    return F.interpolate(t, size=(h, w), mode="area")[0].permute(1, 2, 0).numpy()


def spherify_poses(poses: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre a 360-degree capture (poses (N, 3, 4)) on the point nearest every camera's optical axis, with
    z along the mean direction from it to the cameras, and scale it to a mean camera distance of 1.

    nerf-pytorch's `spherify` for inward-facing LLFF captures (its render path aside); rendered without NDC.
    """
    dirs, origins = poses[:, :3, 2], poses[:, :3, 3]
    proj = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]  # projects onto the plane normal to each axis
    centre = np.linalg.solve(proj.sum(0), (proj @ origins[:, :, None]).sum(0))[:, 0]
    z = _normalize((origins - centre).mean(0))
    x = _normalize(np.cross([0.1, 0.2, 0.3], z))
    frame = np.eye(4)
    frame[:3] = np.stack([x, np.cross(z, x), z, centre], 1)
    full = np.concatenate([poses[:, :3, :4], np.broadcast_to([[[0.0, 0.0, 0.0, 1.0]]], (len(poses), 1, 4))], 1)
    out = (np.linalg.inv(frame) @ full)[:, :3, :4]
    radius = np.sqrt(np.mean(np.sum(out[:, :3, 3] ** 2, -1)))
    out[:, :3, 3] /= radius
    return out, bounds / radius


def _check_forward_facing(root: Path, c2w: np.ndarray, height: int, width: int, focal: float) -> None:
    """NDC needs every ray to point into the scene (-z after recentring): a camera turned sideways or
    backwards gives rays parallel to the near plane, whose NDC coordinates are infinite or meaningless.
    The ray z-component is linear in the pixel position, so the four image corners decide. Every camera
    must also stand in front of the near plane (z > -NDC_NEAR), where NDC starts its rays, and close
    enough to it that its NDC rays are finite in float32."""
    corners = np.array([[(i - 0.5 * width) / focal, -(j - 0.5 * height) / focal, -1.0]
                        for i in (0, width - 1) for j in (0, height - 1)])
    dz = np.einsum("nk,ck->nc", c2w[:, 2, :3], corners)  # z of each corner ray, per camera
    bad = np.nonzero((dz >= -1e-6).any(1))[0]
    if bad.size:
        raise SceneError(f"{root}: camera {int(bad[0])} does not face the scene like the others (not a forward-facing "
                         "capture); NDC needs forward-facing views: load it with ndc=False")
    beyond = np.nonzero(c2w[:, 2, 3] <= -NDC_NEAR)[0]
    if beyond.size:
        k = int(beyond[0])
        raise SceneError(f"{root / 'poses_bounds.npy'}: camera {k} stands beyond the NDC near plane (its z is "
                         f"{c2w[k, 2, 3]:.3g} after scaling by the nearest bound; NDC needs z > {-NDC_NEAR:g}): its "
                         "bounds or position disagree with the other views'; load it with ndc=False")
    for k, pose in enumerate(torch.from_numpy(c2w).float()):  # what is left: float32 running out of digits
        o, d = ndc_rays(height, width, focal, NDC_NEAR, *get_rays(height, width, focal, pose))
        if not (torch.isfinite(o).all() and torch.isfinite(d).all()):
            raise SceneError(f"{root / 'poses_bounds.npy'}: camera {k}'s NDC rays are not finite in float32 (it "
                             f"stands at z = {c2w[k, 2, 3]:.3g}, far from the near plane); load it with ndc=False")


def load_llff(root: str | Path, factor: int = 8, recenter: bool = True, bd_factor: float | None = 0.75,
              ndc: bool = True, llffhold: int = 8, spherify: bool = False, val: str = "test") -> Scene:
    """Load an LLFF scene directory as nerf-pytorch's `load_llff_data` + `run_nerf.py` set it up.

    Test views are every `llffhold`-th image (the view nearest the average pose when llffhold <= 0);
    train is the rest. `val="test"` (nerf-pytorch's convention) makes val the same views as test, so
    nothing may be chosen on val without choosing on the reported views; `val="train"` takes val from the
    training views instead, half-way between the test views (every `llffhold`-th from `llffhold // 2`):
    a model has seen them, so val then measures fit, not generalisation, which still ranks compression
    recipes (each is compared with the same model's fp32 renders) without touching the test views. Images are read from
    `images_{factor}/` when it exists, else from `images/` and downsampled by `factor` with an area filter.
    `spherify` (360-degree captures) centres and scales the cameras as `spherify_poses` says; it needs
    `ndc=False`.
    """
    root = Path(root)
    if not root.is_dir():
        raise SceneError(f"{root}: scene directory not found")
    factor = 1 if factor is None or factor == 0 else factor
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise SceneError(f"{root}: factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    if bd_factor is not None and (isinstance(bd_factor, bool) or not isinstance(bd_factor, (int, float))
                                  or not np.isfinite(bd_factor) or bd_factor <= 0):
        raise SceneError(f"{root}: bd_factor must be a positive number or None, got {bd_factor!r}")
    if isinstance(llffhold, bool) or not isinstance(llffhold, (int, np.integer)):
        raise SceneError(f"{root}: llffhold must be an integer, got {llffhold!r}")
    if val not in ("test", "train"):
        raise SceneError(f"{root}: val must be 'test' (val = test views, as nerf-pytorch) or 'train' (val drawn "
                         f"from the training views), got {val!r}")
    if spherify and ndc:
        raise SceneError(f"{root}: spherify (a 360-degree capture) renders without NDC; add ndc=false")
    raw_poses, bounds = _read_poses_bounds(root / "poses_bounds.npy")
    img_dir, resize = _image_dir(root, factor)
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) != len(raw_poses):
        raise SceneError(f"{img_dir}: {len(files)} images but poses_bounds.npy has {len(raw_poses)} poses")
    images, shape = [], None
    for f in files:
        img = read_image(f, white_bkgd=False)
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            raise SceneError(f"{f}: image is {img.shape[1]}x{img.shape[0]}, others are {shape[1]}x{shape[0]} "
                             "(mixed sizes)")
        images.append(_downsample(img, resize) if resize > 1 else img)
    focal = float(raw_poses[0, 2, 4]) / factor
    # LLFF [down, right, back] -> OpenGL [right, up, back]
    poses = np.concatenate([raw_poses[:, :, 1:2], -raw_poses[:, :, 0:1], raw_poses[:, :, 2:4]], 2)
    scale = 1.0 if bd_factor is None else 1.0 / (bounds.min() * bd_factor)
    poses[:, :3, 3] *= scale
    bounds = bounds * scale
    if recenter:
        try:
            with np.errstate(all="ignore"):
                poses = recenter_poses(poses)
        except np.linalg.LinAlgError:
            poses = np.full_like(poses, np.nan)
        if not np.isfinite(poses).all():
            raise SceneError(f"{root / 'poses_bounds.npy'}: the cameras have no well-defined average pose "
                             "(their view or up axes cancel out); cannot recentre them")
    if spherify:
        try:
            with np.errstate(all="ignore"):
                poses, bounds = spherify_poses(poses, bounds)
        except np.linalg.LinAlgError:
            poses = np.full_like(poses, np.nan)
        if not np.isfinite(poses).all():
            raise SceneError(f"{root / 'poses_bounds.npy'}: the camera axes are parallel; no centre to spherify on")
    n = len(poses)
    if llffhold > 0:
        test = list(range(0, n, llffhold))
    else:
        with np.errstate(over="ignore"):  # a camera too far away to square is not the nearest; checked later
            test = [int(np.argmin(((poses[:, :3, 3] - poses_avg(poses)[:, 3]) ** 2).sum(-1)))]
    train = [i for i in range(n) if i not in test]
    if val == "test":
        val_views = list(test)
    else:
        hold = llffhold if llffhold > 1 else 8
        val_views = [i for i in train if i % hold == hold // 2] or train[len(train) // 2:len(train) // 2 + 1]
    splits = {"train": train, "val": val_views, "test": list(test)}
    c2w = np.concatenate([poses, np.broadcast_to([[[0.0, 0.0, 0.0, 1.0]]], (n, 1, 4))], 1)
    if ndc:
        _check_forward_facing(root, c2w, images[0].shape[0], images[0].shape[1], focal)
    near, far = (0.0, 1.0) if ndc else (float(bounds.min()) * 0.9, float(bounds.max()))
    if not splits["train"]:
        raise SceneError(f"{root}: llffhold={llffhold} holds out all {n} views; no training view is left")
    scene = Scene(name=root.name, images=torch.from_numpy(np.stack(images)).float(),
                 poses=torch.from_numpy(c2w).float(), focal=focal, near=near, far=far, splits=splits,
                 white_bkgd=False, ndc=ndc, source=f"llff:{root.resolve().name}",
                 meta={"factor": factor, "scale": scale, "bounds": [float(bounds.min()), float(bounds.max())],
                       "spherify": spherify, "val": val})
    return scene.check(str(root))
