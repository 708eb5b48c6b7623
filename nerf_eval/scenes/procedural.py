"""Built-in analytic scenes with exact ground truth (colour and depth), deterministic from a seed.

Each scene is a set of primitives (spheres, boxes, a disk) with smooth procedural textures, Lambert
shading under one directional light and a Blinn-Phong highlight (the view-dependent part). Rays are
intersected analytically, so the rendered depth is exact. The same primitives also give a density and a
colour field (`AnalyticField`), used only to warm-start training on these scenes.

Two scenes: `object` (360 degrees around objects on a disk, white background, like the Blender data) and
`forward` (LLFF-style forward-facing cameras looking at objects on a floor in front of a far wall).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from nerf_eval.errors import SceneError
from nerf_eval.rays import get_rays
from nerf_eval.scenes.scene import MIN_SIDE, Scene

LIGHT = torch.tensor([0.45, -0.35, 0.82])
LIGHT = LIGHT / LIGHT.norm()
AMBIENT, DIFFUSE, SPECULAR, SHININESS = 0.35, 0.65, 0.45, 40.0
INSIDE_DENSITY = 60.0


@dataclass
class Texture:
    """albedo = mix(color_a, color_b, pattern(p)) where pattern is a smooth stripe/checker of `freq`."""

    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    kind: str = "plain"  # plain | stripes | checker
    freq: float = 1.0

    def albedo(self, p: torch.Tensor) -> torch.Tensor:
        a = torch.tensor(self.color_a)
        b = torch.tensor(self.color_b)
        if self.kind == "plain":
            t = torch.zeros(p.shape[:-1])
        elif self.kind == "stripes":
            t = 0.5 + 0.5 * torch.tanh(3.0 * torch.sin(self.freq * math.pi * p[..., 2]))
        elif self.kind == "checker":
            s = torch.sin(self.freq * math.pi * p[..., 0]) * torch.sin(self.freq * math.pi * p[..., 1])
            t = 0.5 + 0.5 * torch.tanh(4.0 * s)
        else:
            raise ValueError(f"unknown texture kind {self.kind!r}")
        return a + (b - a) * t[..., None]


@dataclass
class Sphere:
    center: tuple[float, float, float]
    radius: float
    texture: Texture

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        oc = o - torch.tensor(self.center)
        a = (d * d).sum(-1)
        b = 2.0 * (oc * d).sum(-1)
        c = (oc * oc).sum(-1) - self.radius ** 2
        disc = b * b - 4 * a * c
        sq = torch.sqrt(disc.clamp(min=0.0))
        t0 = (-b - sq) / (2 * a)
        t1 = (-b + sq) / (2 * a)
        t = torch.where(t0 > 1e-4, t0, t1)
        return torch.where((disc >= 0) & (t > 1e-4), t, torch.full_like(t, math.inf))

    def normal(self, p: torch.Tensor) -> torch.Tensor:
        n = p - torch.tensor(self.center)
        return n / n.norm(dim=-1, keepdim=True).clamp(min=1e-8)

    def sdf(self, p: torch.Tensor) -> torch.Tensor:
        return (p - torch.tensor(self.center)).norm(dim=-1) - self.radius


@dataclass
class Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    texture: Texture

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        lo, hi = torch.tensor(self.lo), torch.tensor(self.hi)
        inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
        ta, tb = (lo - o) * inv, (hi - o) * inv
        tmin = torch.minimum(ta, tb).amax(-1)
        tmax = torch.maximum(ta, tb).amin(-1)
        t = torch.where(tmin > 1e-4, tmin, tmax)
        return torch.where((tmax >= tmin) & (t > 1e-4), t, torch.full_like(t, math.inf))

    def normal(self, p: torch.Tensor) -> torch.Tensor:
        lo, hi = torch.tensor(self.lo), torch.tensor(self.hi)
        c, h = (lo + hi) / 2, (hi - lo) / 2
        q = (p - c) / h
        axis = q.abs().argmax(-1)
        n = torch.nn.functional.one_hot(axis, 3).float() * torch.sign(torch.gather(q, -1, axis[..., None]))
        return n

    def sdf(self, p: torch.Tensor) -> torch.Tensor:
        lo, hi = torch.tensor(self.lo), torch.tensor(self.hi)
        c, h = (lo + hi) / 2, (hi - lo) / 2
        q = (p - c).abs() - h
        return q.clamp(min=0).norm(dim=-1) + q.amax(-1).clamp(max=0)


@dataclass
class Disk:
    """A flat vertical cylinder (axis +z) from z = bottom to z = top."""

    center_xy: tuple[float, float]
    radius: float
    bottom: float
    top: float
    texture: Texture

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        c = torch.tensor(self.center_xy)
        inf = torch.full(o.shape[:-1], math.inf)
        best = inf
        for zc in (self.top, self.bottom):
            t = (zc - o[..., 2]) / torch.where(d[..., 2].abs() < 1e-12, torch.full_like(d[..., 2], 1e-12), d[..., 2])
            p = o[..., :2] + t[..., None] * d[..., :2]
            ok = (t > 1e-4) & ((p - c).norm(dim=-1) <= self.radius)
            best = torch.minimum(best, torch.where(ok, t, inf))
        oc, dd = o[..., :2] - c, d[..., :2]
        a = (dd * dd).sum(-1).clamp(min=1e-12)
        b = 2 * (oc * dd).sum(-1)
        cc = (oc * oc).sum(-1) - self.radius ** 2
        disc = b * b - 4 * a * cc
        sq = torch.sqrt(disc.clamp(min=0))
        for t in ((-b - sq) / (2 * a), (-b + sq) / (2 * a)):
            z = o[..., 2] + t * d[..., 2]
            ok = (disc >= 0) & (t > 1e-4) & (z >= self.bottom) & (z <= self.top)
            best = torch.minimum(best, torch.where(ok, t, inf))
        return best

    def normal(self, p: torch.Tensor) -> torch.Tensor:
        c = torch.tensor(self.center_xy)
        r = (p[..., :2] - c).norm(dim=-1)
        side = (r > self.radius - 1e-3) & (p[..., 2] < self.top - 1e-4) & (p[..., 2] > self.bottom + 1e-4)
        radial = torch.cat([(p[..., :2] - c) / r[..., None].clamp(min=1e-8), torch.zeros_like(r)[..., None]], -1)
        up = torch.zeros_like(p)
        up[..., 2] = torch.where(p[..., 2] >= (self.top + self.bottom) / 2, 1.0, -1.0)
        return torch.where(side[..., None], radial, up)

    def sdf(self, p: torch.Tensor) -> torch.Tensor:
        c = torch.tensor(self.center_xy)
        dr = (p[..., :2] - c).norm(dim=-1) - self.radius
        mid, half = (self.top + self.bottom) / 2, (self.top - self.bottom) / 2
        dz = (p[..., 2] - mid).abs() - half
        q = torch.stack([dr, dz], -1)
        return q.clamp(min=0).norm(dim=-1) + q.amax(-1).clamp(max=0)


def shade(prim, p: torch.Tensor, viewdir: torch.Tensor) -> torch.Tensor:
    """Colour of surface point p of `prim` seen along unit direction `viewdir` (towards the surface)."""
    n = prim.normal(p)
    albedo = prim.texture.albedo(p)
    lam = (n * LIGHT).sum(-1).clamp(min=0.0)
    h = LIGHT - viewdir
    h = h / h.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    spec = (n * h).sum(-1).clamp(min=0.0) ** SHININESS
    rgb = albedo * (AMBIENT + DIFFUSE * lam)[..., None] + SPECULAR * spec[..., None]
    return rgb.clamp(0.0, 1.0)


@dataclass
class AnalyticScene:
    """Primitives plus a background colour; renders exact colour and z-depth for any rays."""

    primitives: list
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def trace(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Colour (…, 3) and ray parameter t (…,) of the first hit (inf on background)."""
        ts = torch.stack([prim.intersect(o, d) for prim in self.primitives], -1)
        t, which = ts.min(-1)
        hit = torch.isfinite(t)
        p = o + torch.where(hit, t, torch.zeros_like(t))[..., None] * d
        v = d / d.norm(dim=-1, keepdim=True)
        rgb = torch.tensor(self.background).expand(p.shape).clone()
        for k, prim in enumerate(self.primitives):
            m = hit & (which == k)
            if m.any():
                rgb[m] = shade(prim, p[m], v[m])
        return rgb, t

    def density(self, p: torch.Tensor) -> torch.Tensor:
        """Ground-truth volume density: INSIDE_DENSITY inside any primitive, 0 outside."""
        sdf = torch.stack([prim.sdf(p) for prim in self.primitives], -1).amin(-1)
        return torch.where(sdf <= 0, INSIDE_DENSITY, 0.0)

    def color(self, p: torch.Tensor, viewdir: torch.Tensor) -> torch.Tensor:
        """Colour field: the shade of the nearest primitive's surface near p, seen along viewdir."""
        sdfs = torch.stack([prim.sdf(p) for prim in self.primitives], -1)
        which = sdfs.abs().argmin(-1)
        rgb = torch.zeros(p.shape)
        for k, prim in enumerate(self.primitives):
            m = which == k
            if m.any():
                rgb[m] = shade(prim, p[m], viewdir[m])
        return rgb


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """Camera-to-world (4, 4) for a camera at `eye` looking at `target` (OpenGL: looks down -z)."""
    back = eye - target
    back = back / np.linalg.norm(back)
    right = np.cross(up, back)
    right = right / np.linalg.norm(right)
    cam_up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, cam_up, back, eye
    return m


def object_scene(rng: np.random.Generator) -> AnalyticScene:
    jitter = lambda s: float(rng.uniform(-s, s))  # noqa: E731
    prims = [
        Disk((0.0, 0.0), 1.6, -0.08, 0.0, Texture((0.85, 0.85, 0.8), (0.35, 0.4, 0.5), "checker", 1.6)),
        Sphere((0.45 + jitter(0.05), 0.35, 0.45), 0.45, Texture((0.85, 0.2, 0.15), (0.95, 0.8, 0.2), "stripes", 3.0)),
        Sphere((-0.55, -0.3 + jitter(0.05), 0.35), 0.35, Texture((0.15, 0.35, 0.85), (0.15, 0.35, 0.85))),
        Sphere((-0.25, 0.7, 0.25), 0.25, Texture((0.2, 0.7, 0.3), (0.9, 0.9, 0.9), "stripes", 5.0)),
        Box((0.1, -0.95, 0.0), (0.65, -0.4, 0.55), Texture((0.9, 0.55, 0.15), (0.9, 0.55, 0.15))),
    ]
    return AnalyticScene(prims, background=(1.0, 1.0, 1.0))


def forward_scene(rng: np.random.Generator) -> AnalyticScene:
    jitter = lambda s: float(rng.uniform(-s, s))  # noqa: E731
    prims = [
        Box((-4.0, -3.0, -1.05), (4.0, 3.0, -1.0), Texture((0.8, 0.8, 0.75), (0.45, 0.45, 0.5), "checker", 1.0)),
        Box((-4.0, 2.0, -1.05), (4.0, 2.1, 3.0), Texture((0.75, 0.8, 0.9), (0.55, 0.6, 0.75), "stripes", 1.5)),
        Sphere((-0.6 + jitter(0.05), 0.2, -0.45), 0.55, Texture((0.85, 0.25, 0.2), (0.95, 0.85, 0.3), "stripes", 3.0)),
        Sphere((0.8, 0.9 + jitter(0.05), -0.6), 0.4, Texture((0.2, 0.45, 0.85), (0.2, 0.45, 0.85))),
        Box((0.0, -0.6, -1.0), (0.5, -0.1, -0.5), Texture((0.3, 0.75, 0.35), (0.3, 0.75, 0.35))),
    ]
    return AnalyticScene(prims, background=(1.0, 1.0, 1.0))


@dataclass(frozen=True)
class ProceduralSpec:
    """How a built-in scene is generated."""

    name: str
    size: int = 100
    camera_angle_x: float = 0.6911112070083618
    n_views: int = 100
    near: float = 2.0
    far: float = 6.0
    seed: int = 0


BUILTIN_SCENES: dict[str, ProceduralSpec] = {
    "object": ProceduralSpec("object", near=2.0, far=6.0),
    "forward": ProceduralSpec("forward", n_views=60, near=2.0, far=7.5),
}


def _poses(spec: ProceduralSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.name == "object":
        golden = math.pi * (3.0 - math.sqrt(5.0))
        poses = []
        for k in range(spec.n_views):
            az = k * golden + rng.uniform(-0.05, 0.05)
            el = math.radians(15.0 + 40.0 * ((k * 0.618034) % 1.0))
            eye = 4.0 * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
            poses.append(look_at(eye, np.array([0.0, 0.0, 0.2])))
        return np.stack(poses)
    poses = []
    for k in range(spec.n_views):
        r = 0.6 * math.sqrt((k + 0.5) / spec.n_views)
        a = k * math.pi * (3.0 - math.sqrt(5.0))
        eye = np.array([r * math.cos(a), -4.0, 0.3 + 0.5 * r * math.sin(a)])
        target = eye + np.array([0.0, 1.0, -0.12]) + rng.uniform(-0.02, 0.02, 3)
        poses.append(look_at(eye, target))
    return np.stack(poses)


def holdout_splits(n: int) -> dict[str, list[int]]:
    """Deterministic split of n views: test every 10th from 5, val every 20th from 0, train the rest."""
    test = list(range(5, n, 10))
    val = list(range(0, n, 20))
    train = [i for i in range(n) if i not in test and i not in val]
    return {"train": train, "val": val, "test": test}


# Largest side of a built-in scene: its views are rendered exactly and held in memory, 1024^2 pixels x
# 100 views of colour and depth is about 1.7 GB.
MAX_SIZE = 1024


def make_scene(name: str, seed: int = 0, size: int | None = None) -> tuple[Scene, AnalyticScene]:
    """Render built-in scene `name` exactly; returns the Scene (with depth) and its analytic model."""
    if name not in BUILTIN_SCENES:
        raise KeyError(f"unknown built-in scene {name!r}; choose from {sorted(BUILTIN_SCENES)}")
    spec = BUILTIN_SCENES[name]
    size = spec.size if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIDE <= size <= MAX_SIZE:
        raise SceneError(f"{name}: size must be an integer from {MIN_SIDE} to {MAX_SIZE} pixels, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SceneError(f"{name}: seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    analytic = object_scene(rng) if name == "object" else forward_scene(rng)
    poses = torch.tensor(_poses(spec, rng), dtype=torch.float32)
    focal = 0.5 * size / math.tan(0.5 * spec.camera_angle_x)
    images, depths = [], []
    for pose in poses:
        o, d = get_rays(size, size, focal, pose)
        rgb, t = analytic.trace(o, d)
        images.append(rgb)
        depths.append(t)
    scene = Scene(name=name, images=torch.stack(images).float(), poses=poses, focal=focal, near=spec.near,
                  far=spec.far, splits=holdout_splits(spec.n_views), white_bkgd=True, depths=torch.stack(depths).float(),
                  source=f"builtin:{name}:seed={seed}" + (f":size={size}" if size != spec.size else ""), meta={"seed": seed, "camera_angle_x": spec.camera_angle_x})
    return scene, analytic
