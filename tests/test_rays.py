"""Pinhole and NDC rays: nerf-pytorch's conventions (camera looks down -z, t is camera z-depth)."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerf_eval.rays import get_rays, ndc_rays


def rotation(axis: torch.Tensor, angle: float) -> torch.Tensor:
    """Rodrigues' rotation about a unit axis."""
    k = axis / axis.norm()
    kx = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return torch.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def camera_to_world(axis=(0.3, -0.5, 0.8), angle=0.9, position=(1.0, -2.0, 3.0)) -> torch.Tensor:
    c2w = torch.eye(4)
    c2w[:3, :3] = rotation(torch.tensor(axis), angle)
    c2w[:3, 3] = torch.tensor(position)
    return c2w


def camera_poses():
    unit = st.floats(-1.0, 1.0)
    axes = st.tuples(unit, unit, unit).filter(lambda a: sum(x * x for x in a) > 0.05)
    positions = st.tuples(*(st.floats(-5.0, 5.0),) * 3)
    return st.builds(camera_to_world, axes, st.floats(-math.pi, math.pi), positions)


def test_shapes_and_origins():
    c2w = camera_to_world()
    o, d = get_rays(6, 8, 10.0, c2w)
    assert o.shape == d.shape == (6, 8, 3)
    assert torch.equal(o, c2w[:3, 3].expand(6, 8, 3))


def test_centre_pixel_looks_down_minus_z_rotated_by_c2w():
    c2w = camera_to_world()
    _, d = get_rays(6, 8, 10.0, c2w)
    torch.testing.assert_close(d[3, 4], -c2w[:3, 2])


def test_identity_camera_pixel_directions():
    o, d = get_rays(4, 4, 2.0, torch.eye(4))
    # pixel (row j=0, column i=3): ((3 - 2) / 2, -(0 - 2) / 2, -1)
    torch.testing.assert_close(d[0, 3], torch.tensor([0.5, 1.0, -1.0]))
    assert torch.equal(o, torch.zeros(4, 4, 3))


def test_accepts_3x4_poses():
    c2w = camera_to_world()
    o4, d4 = get_rays(5, 5, 4.0, c2w)
    o3, d3 = get_rays(5, 5, 4.0, c2w[:3])
    assert torch.equal(o4, o3) and torch.equal(d4, d3)


@given(c2w=camera_poses(), t=st.floats(0.1, 10.0))
@settings(max_examples=30, deadline=None)
def test_ray_parameter_equals_camera_z_depth(c2w, t):
    o, d = get_rays(5, 7, 6.0, c2w)
    p = o + t * d
    p_cam = (p - c2w[:3, 3]) @ c2w[:3, :3]  # world -> camera (R^T (p - o))
    torch.testing.assert_close(p_cam[..., 2], torch.full((5, 7), -t), atol=1e-4, rtol=1e-5)


def test_ndc_maps_near_plane_to_minus_one_and_infinity_to_plus_one():
    h, w, focal, near = 6, 8, 5.0, 1.0
    o, d = get_rays(h, w, focal, torch.eye(4))
    o_ndc, d_ndc = ndc_rays(h, w, focal, near, o, d)
    torch.testing.assert_close(o_ndc[..., 2], torch.full((h, w), -1.0))
    torch.testing.assert_close((o_ndc + d_ndc)[..., 2], torch.full((h, w), 1.0))


def test_ndc_origin_is_the_projected_pixel():
    h, w, focal, near = 6, 8, 5.0, 1.0
    o, d = get_rays(h, w, focal, torch.eye(4))
    o_ndc, _ = ndc_rays(h, w, focal, near, o, d)
    i, j = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="xy")
    # ndc x = (pixel x offset) / (W / 2), y likewise (up is +)
    torch.testing.assert_close(o_ndc[..., 0], (i - w / 2) / (w / 2))
    torch.testing.assert_close(o_ndc[..., 1], -(j - h / 2) / (h / 2))


def test_ndc_point_depth_is_monotone_in_z():
    """A point at camera depth z lands at ndc z = 1 - 2 near / z (nearer points have smaller ndc z)."""
    h, w, focal, near = 4, 4, 3.0, 1.0
    o, d = get_rays(h, w, focal, torch.eye(4))
    o_ndc, d_ndc = ndc_rays(h, w, focal, near, o, d)
    for z in (1.0, 2.0, 5.0):
        # the ndc ray parameter of the point at depth z is 1 - near / z
        p = o_ndc + (1.0 - near / z) * d_ndc
        torch.testing.assert_close(p[..., 2], torch.full((h, w), 1.0 - 2.0 * near / z))
