"""Camera rays: pinhole rays in the OpenGL/Blender convention, and NDC rays for forward-facing scenes.

Conventions follow nerf-pytorch: camera looks down -z, +y is up, pixel (i, j) maps to direction
((i - cx) / focal, -(j - cy) / focal, -1) in camera space, so the ray parameter t equals camera z-depth.
"""

from __future__ import annotations

import torch

# The near plane of NDC rays (z = -NDC_NEAR), as nerf-pytorch: LLFF poses are scaled so that the nearest
# scene depth is 1 / bd_factor > 1, which puts every forward-facing camera in front of this plane.
NDC_NEAR = 1.0


def get_rays(height: int, width: int, focal: float, c2w: torch.Tensor,
             cx: float | None = None, cy: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and directions (H, W, 3) of every pixel's ray for a camera-to-world matrix (3x4 or 4x4)."""
    c2w = torch.as_tensor(c2w, dtype=torch.float32)
    cx = width * 0.5 if cx is None else cx
    cy = height * 0.5 if cy is None else cy
    i, j = torch.meshgrid(torch.arange(width, dtype=torch.float32),
                          torch.arange(height, dtype=torch.float32), indexing="xy")
    dirs = torch.stack([(i - cx) / focal, -(j - cy) / focal, -torch.ones_like(i)], dim=-1)
    rays_d = dirs @ c2w[:3, :3].T
    rays_o = c2w[:3, 3].expand(rays_d.shape)
    return rays_o.contiguous(), rays_d.contiguous()


def ndc_rays(height: int, width: int, focal: float, near: float,
             rays_o: torch.Tensor, rays_d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Map rays to normalized device coordinates (forward-facing scenes; near plane at z = -near)."""
    t = -(near + rays_o[..., 2]) / rays_d[..., 2]
    rays_o = rays_o + t[..., None] * rays_d
    ox, oy, oz = rays_o[..., 0], rays_o[..., 1], rays_o[..., 2]
    dx, dy, dz = rays_d[..., 0], rays_d[..., 1], rays_d[..., 2]
    o0 = -1.0 / (width / (2.0 * focal)) * ox / oz
    o1 = -1.0 / (height / (2.0 * focal)) * oy / oz
    o2 = 1.0 + 2.0 * near / oz
    d0 = -1.0 / (width / (2.0 * focal)) * (dx / dz - ox / oz)
    d1 = -1.0 / (height / (2.0 * focal)) * (dy / dz - oy / oz)
    d2 = -2.0 * near / oz
    return torch.stack([o0, o1, o2], -1), torch.stack([d0, d1, d2], -1)
