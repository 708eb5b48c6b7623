"""The Scene type every loader returns: images, cameras, bounds, splits and optional ground-truth depth."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from nerf_eval.rays import get_rays, ndc_rays
from nerf_eval.render import Rays


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

    def split(self, name: str) -> list[int]:
        """View indices of a split; 'all' is every view."""
        if name == "all":
            return list(range(self.images.shape[0]))
        if name not in self.splits:
            raise KeyError(f"scene {self.name!r} has no split {name!r} (has {sorted(self.splits)})")
        return list(self.splits[name])

    def rays(self, index: int) -> Rays:
        """The H*W rays of view `index`, in row-major pixel order."""
        o, d = get_rays(self.height, self.width, self.focal, self.poses[index])
        viewdirs = d
        if self.ndc:
            o, d = ndc_rays(self.height, self.width, self.focal, 1.0, o, d)
        return Rays.from_od(o, d, self.near, self.far, viewdirs)

    def rays_for(self, indices: list[int]) -> Rays:
        return Rays.cat([self.rays(i) for i in indices])

    def sample_rays(self, n_rays: int, split: str = "train", seed: int = 0) -> Rays:
        """`n_rays` pixels' rays drawn uniformly (seeded) from the views of `split` (calibration data)."""
        if n_rays < 1:
            raise ValueError(f"need at least one calibration ray, got {n_rays}")
        idx = self.split(split)
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
        """The same scene at `scale` times the resolution (area filter for colour, nearest for depth)."""
        if scale == 1.0:
            return self
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        h, w = max(1, round(self.height * scale)), max(1, round(self.width * scale))
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
            raise ValueError(f"views {bad} out of range: split {split!r} of {self.name!r} has {len(idx)} views")
        return [idx[v] for v in views]
