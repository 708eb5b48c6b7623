"""Camera paths for fly-through renders: an orbit around 360° scenes, a spiral for forward-facing ones."""

from __future__ import annotations

import math

import numpy as np
import torch

from nerf_eval.scenes.procedural import look_at
from nerf_eval.scenes.scene import Scene


def focus_point(poses: np.ndarray) -> np.ndarray:
    """The point closest (least squares) to all cameras' optical axes."""
    a = np.zeros((3, 3))
    b = np.zeros(3)
    for p in poses:
        d = -p[:3, 2] / np.linalg.norm(p[:3, 2])
        m = np.eye(3) - np.outer(d, d)
        a += m
        b += m @ p[:3, 3]
    return np.linalg.lstsq(a, b, rcond=None)[0]


def camera_path(scene: Scene, n_frames: int = 40) -> torch.Tensor:
    """(n_frames, 4, 4) camera-to-world poses: an orbit if the cameras surround the scene, else a spiral."""
    poses = scene.poses.double().numpy()
    forward = -poses[:, :3, 2]
    spread = math.degrees(math.acos(float(np.clip(np.min(forward @ forward.mean(0) / np.linalg.norm(forward.mean(0))),
                                                  -1, 1))))
    up = poses[:, :3, 1].mean(0)
    up /= np.linalg.norm(up)
    out = []
    if spread > 60.0:
        target = focus_point(poses)
        rel = poses[:, :3, 3] - target
        radius = float(np.linalg.norm(rel, axis=1).mean())
        height = float((rel @ up).mean())
        ring = math.sqrt(max(radius ** 2 - height ** 2, 1e-6))
        e1 = np.cross(up, [1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.cross(up, [0.0, 1.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(up, e1)
        for k in range(n_frames):
            a = 2 * math.pi * k / n_frames
            eye = target + up * height + ring * (math.cos(a) * e1 + math.sin(a) * e2)
            out.append(look_at(eye, target, up))
    else:
        centre = poses[:, :3, 3].mean(0)
        fwd = forward.mean(0) / np.linalg.norm(forward.mean(0))
        right = np.cross(fwd, up)
        right /= np.linalg.norm(right)
        cam_up = np.cross(right, fwd)
        r = 0.5 * float(np.linalg.norm(poses[:, :3, 3] - centre, axis=1).max())
        for k in range(n_frames):
            a = 2 * math.pi * k / n_frames
            eye = centre + r * (math.cos(a) * right + math.sin(a) * cam_up)
            out.append(look_at(eye, eye + 4.0 * fwd, up))
    return torch.tensor(np.stack(out), dtype=torch.float32)
