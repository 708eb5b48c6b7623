"""The Scene type every loader returns: images, cameras, bounds, splits and optional ground-truth depth."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from nerf_eval.errors import SceneError
from nerf_eval.rays import NDC_NEAR, get_rays, ndc_rays
from nerf_eval.render import Rays

# Fewest pixels on a side a rescaled scene may have: the smallest image on which every metric is still
# defined (SSIM's 3-pixel window, image gradients for sharpness). The test suites evaluate 8-pixel scenes
# at half resolution, hence 4 rather than a larger, more comfortable bound.
MIN_SIDE = 4
# Largest image side per pixel of focal length: beyond it a pixel's ray direction (side / focal) is so
# long that its squared length overflows float32 and the view direction is NaN; any real camera is far
# below it (a 179.9-degree field of view is about 2,300).
MAX_FOV_RATIO = 1e6


@dataclass
class Scene:
    """A posed image set.

    images: (N, H, W, 3) float32 in [0, 1], composited on the background already.
    poses: (N, 4, 4) camera-to-world, OpenGL convention. depths: (N, H, W) camera z-depth with inf where
    a pixel sees only background, or None. `splits` maps "train"/"val"/"test" to view indices.
    With `ndc`, rays are mapped to NDC space (forward-facing LLFF scenes; near/far are then 0 and 1).
    """

    name: str
    images: torch.Tensor
    poses: torch.Tensor
    focal: float
    near: float
    far: float
    splits: dict[str, list[int]]
    white_bkgd: bool = True
    depths: torch.Tensor | None = None
    ndc: bool = False
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def check(self, where: str | None = None) -> "Scene":
        """Raise a one-line SceneError naming `where` (default: the scene's source) when the scene breaks
        the invariants rendering and metrics rely on; return the scene otherwise.

        Loaders call it last, so whatever a file holds, a returned Scene has at least one view of
        finite colours in [0, 1], finite poses with an invertible rotation, a finite positive focal
        length, finite bounds 0 <= near < far, split indices that exist, and depths that are None or
        non-negative (inf = background) and never NaN.
        """
        where = where or self.source or self.name
        imgs, poses = self.images, self.poses
        if not isinstance(imgs, torch.Tensor) or imgs.ndim != 4 or imgs.shape[-1] != 3 or 0 in imgs.shape:
            raise SceneError(f"{where}: images have shape {tuple(getattr(imgs, 'shape', ()))}, expected (N, H, W, 3)")
        if not imgs.is_floating_point() or not torch.isfinite(imgs).all() or imgs.min() < 0 or imgs.max() > 1:
            raise SceneError(f"{where}: image values must be finite and in [0, 1]")
        n = imgs.shape[0]
        if not isinstance(poses, torch.Tensor) or tuple(poses.shape) != (n, 4, 4):
            raise SceneError(f"{where}: poses have shape {tuple(getattr(poses, 'shape', ()))}, expected ({n}, 4, 4)")
        if not torch.isfinite(poses).all():
            raise SceneError(f"{where}: camera poses hold NaN or inf")
        det = torch.linalg.det(poses[:, :3, :3].double()).abs()
        if (det < 1e-9).any():
            k = int(torch.nonzero(det < 1e-9)[0, 0])
            raise SceneError(f"{where}: camera {k} has a degenerate (non-invertible) rotation")
        for name, value in (("focal", self.focal), ("near", self.near), ("far", self.far)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SceneError(f"{where}: {name} is {value!r}, not a finite number")
            if abs(value) > torch.finfo(torch.float32).max:  # rays and samples are float32 tensors
                raise SceneError(f"{where}: {name} is {value:g}, beyond float32's range")
        if self.focal <= 0:
            raise SceneError(f"{where}: focal length must be positive, got {self.focal:g}")
        if max(imgs.shape[1:3]) > MAX_FOV_RATIO * self.focal:
            raise SceneError(f"{where}: focal length {self.focal:g} px is too short for "
                             f"{imgs.shape[2]}x{imgs.shape[1]} images (a field of view of 180 degrees; their rays "
                             "would not be finite)")
        if not 0.0 <= self.near < self.far:
            raise SceneError(f"{where}: need 0 <= near < far, got near={self.near:g}, far={self.far:g}")
        for split, idx in self.splits.items():
            bad = [i for i in idx if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n]
            if bad:
                raise SceneError(f"{where}: split {split!r} names views {bad[:3]} of {n}")
        if self.depths is not None:
            d = self.depths
            if not isinstance(d, torch.Tensor) or tuple(d.shape) != tuple(imgs.shape[:3]):
                raise SceneError(f"{where}: depths have shape {tuple(getattr(d, 'shape', ()))}, "
                                 f"expected {tuple(imgs.shape[:3])}")
            if torch.isnan(d).any() or (d < 0).any():
                raise SceneError(f"{where}: depth maps hold NaN or negative values (inf marks background)")
        return self

    def split(self, name: str) -> list[int]:
        """View indices of a split; 'all' is every view."""
        if name == "all":
            return list(range(self.images.shape[0]))
        if name not in self.splits:
            raise SceneError(f"scene {self.name!r} has no split {name!r} (has {sorted(self.splits)})")
        return list(self.splits[name])

    def rays(self, index: int) -> Rays:
        """The H*W rays of view `index`, in row-major pixel order."""
        o, d = get_rays(self.height, self.width, self.focal, self.poses[index])
        viewdirs = d
        if self.ndc:
            o, d = ndc_rays(self.height, self.width, self.focal, NDC_NEAR, o, d)
        return Rays.from_od(o, d, self.near, self.far, viewdirs)

    def rays_for(self, indices: list[int]) -> Rays:
        return Rays.cat([self.rays(i) for i in indices])

    def sample_rays(self, n_rays: int, split: str = "train", seed: int = 0) -> Rays:
        """`n_rays` pixels' rays drawn uniformly (seeded) from the views of `split` (calibration data)."""
        if n_rays < 1:
            raise ValueError(f"need at least one calibration ray, got {n_rays}")
        idx = self.split(split)
        if not idx:
            raise SceneError(f"{self.source or self.name}: split {split!r} has no views to draw rays from")
        g = torch.Generator().manual_seed(seed)
        views = torch.tensor(idx)[torch.randint(len(idx), (n_rays,), generator=g)]
        pix = torch.randint(self.height * self.width, (n_rays,), generator=g)
        parts = []
        for v in views.unique().tolist():
            sel = pix[views == v]
            parts.append(self.rays(v)[sel])
        return Rays.cat(parts)

    def target(self, index: int) -> torch.Tensor:
        return self.images[index].reshape(-1, 3)

    def rescaled(self, scale: float) -> "Scene":
        """The same scene at `scale` times the resolution (area filter for colour, nearest for depth).

        Refuses (one-line SceneError) a scale that leaves fewer than MIN_SIDE pixels on a side: a 1x1
        "image" has no structure to measure (SSIM, sharpness), so its figures would be meaningless."""
        if scale == 1.0:
            return self
        if not 0.0 < scale <= 1.0:
            raise SceneError(f"scale must be in (0, 1], got {scale}")
        h, w = max(1, round(self.height * scale)), max(1, round(self.width * scale))
        if min(h, w) < MIN_SIDE:
            smallest = MIN_SIDE / min(self.height, self.width)
            hint = (f"use a scale of at least {math.ceil(smallest * 1000) / 1000:g}" if smallest < 1.0
                    else "it cannot be scaled down")
            raise SceneError(f"{self.source or self.name}: scale {scale:g} makes its {self.width}x{self.height} views "
                             f"{w}x{h} pixels; need at least {MIN_SIDE} on a side ({hint})")
        imgs = F.interpolate(self.images.permute(0, 3, 1, 2), size=(h, w), mode="area").permute(0, 2, 3, 1)
        depths = None
        if self.depths is not None:
            depths = F.interpolate(self.depths[:, None], size=(h, w), mode="nearest-exact")[:, 0]
        return replace(self, images=imgs.contiguous(), depths=depths, focal=self.focal * w / self.width)

    def subset(self, split: str, views: list[int] | None = None) -> list[int]:
        """Indices of `split`, optionally only its positions `views` (e.g. [0, 8] = its 1st and 9th view)."""
        idx = self.split(split)
        if views is None:
            return idx
        bad = [v for v in views if not 0 <= v < len(idx)]
        if bad:
            raise SceneError(f"views {bad} out of range: split {split!r} of {self.name!r} has {len(idx)} views")
        return [idx[v] for v in views]
