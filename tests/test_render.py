"""Volume rendering: analytic cases, chunking, determinism and cost linear in the number of rays."""

import math

import pytest
import torch
from torch import nn

from nerf_eval.compress import get_compressor
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import (NARROW_NET_CHUNK, NET_CHUNK, POINTS_PER_CALL, Rays, RenderSettings, render_chunked,
                              render_rays, volume_render)

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)
SETTINGS = RenderSettings(n_coarse=8, n_fine=8, chunk=64)


def rays_down_z(n: int, z0: float = 5.0, near: float = 2.0, far: float = 6.0) -> Rays:
    """n parallel rays from z = z0 looking down -z, spread over a small patch."""
    xy = torch.linspace(-0.3, 0.3, n)
    o = torch.stack([xy, xy.flip(0), torch.full((n,), z0)], -1)
    d = torch.tensor([0.0, 0.0, -1.0]).expand(n, 3)
    return Rays.from_od(o, d, near, far)


class PlaneField(nn.Module):
    """Opaque half-space z < height of one colour; reads the point from the encoding's first 3 entries."""

    def __init__(self, height: float, rgb_logits=(2.0, -1.0, 0.5), density: float = 1e3) -> None:
        super().__init__()
        self.height, self.density = height, density
        self.register_buffer("rgb", torch.tensor(rgb_logits))
        self.points = 0
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.points += x.shape[0]
        self.calls.append(x.shape[0])
        sigma = torch.where(x[:, 2] < self.height, self.density, 0.0)
        return torch.cat([self.rgb.expand(x.shape[0], 3), sigma[:, None]], -1)


def plane_pair(height: float) -> ModelPair:
    return ModelPair(PlaneField(height), PlaneField(height), TINY)


def test_one_opaque_sample_returns_its_colour_and_depth():
    z = torch.tensor([[2.0, 3.0, 4.0, 5.0]])
    raw = torch.zeros(1, 4, 4)
    raw[0, :, :3] = torch.tensor([1.5, -0.5, 0.0])
    raw[0, 1, 3] = 1e4  # only the second sample is dense
    for white in (True, False):
        out = volume_render(raw, z, torch.tensor([[0.0, 0.0, -1.0]]), white_bkgd=white)
        torch.testing.assert_close(out["rgb"][0], torch.sigmoid(torch.tensor([1.5, -0.5, 0.0])))
        torch.testing.assert_close(out["depth"][0], torch.tensor(3.0))
        torch.testing.assert_close(out["acc"][0], torch.tensor(1.0))


def test_zero_density_shows_the_background():
    z = torch.linspace(2.0, 6.0, 8).expand(3, 8)
    raw = torch.randn(3, 8, 4, generator=torch.Generator().manual_seed(0))
    raw[..., 3] = -5.0  # relu(sigma) = 0 everywhere
    d = torch.tensor([[0.0, 0.0, -1.0]]).expand(3, 3)
    white = volume_render(raw, z, d, white_bkgd=True)
    black = volume_render(raw, z, d, white_bkgd=False)
    torch.testing.assert_close(white["rgb"], torch.ones(3, 3))
    torch.testing.assert_close(black["rgb"], torch.zeros(3, 3))
    torch.testing.assert_close(white["acc"], torch.zeros(3))


def test_alpha_compositing_of_two_half_transparent_samples():
    """alpha = 1 - exp(-sigma * dist): two samples with alpha 1/2 then 1 give weights 1/2, 1/2."""
    z = torch.tensor([[1.0, 2.0]])
    raw = torch.zeros(1, 2, 4)
    raw[0, 0, 3] = math.log(2.0)  # dist 1 -> alpha 1/2
    raw[0, 1, 3] = 1.0  # last dist is 1e10 -> alpha 1
    raw[0, 0, :3] = 10.0  # white-ish first
    raw[0, 1, :3] = -10.0  # black-ish second
    out = volume_render(raw, z, torch.tensor([[0.0, 0.0, -1.0]]), white_bkgd=False)
    torch.testing.assert_close(out["weights"][0], torch.tensor([0.5, 0.5]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["depth"][0], torch.tensor(1.5), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["rgb"][0], torch.full((3,), 0.5), atol=1e-4, rtol=0)


def test_hierarchical_render_finds_an_opaque_plane():
    """Rays from z=5 hit the plane z=1 at depth 4; the fine pass is closer to it than the coarse pass."""
    settings = RenderSettings(n_coarse=16, n_fine=32, white_bkgd=True)
    out = render_rays(plane_pair(1.0), rays_down_z(5), settings)
    coarse_step = 4.0 / 15
    assert (out["depth0"] - 4.0).abs().max() <= coarse_step
    assert (out["depth"] - 4.0).abs().max() < (out["depth0"] - 4.0).abs().max()
    assert (out["depth"] - 4.0).abs().max() <= 0.05
    torch.testing.assert_close(out["rgb"], torch.sigmoid(torch.tensor([2.0, -1.0, 0.5])).expand(5, 3))


def test_coarse_only_pair_renders():
    pair = ModelPair.create(TINY, with_fine=False)
    out = render_rays(pair, rays_down_z(3), SETTINGS)
    assert out["rgb"].shape == (3, 3) and out["z_vals"].shape == (3, SETTINGS.n_coarse)
    assert torch.equal(out["rgb"], out["rgb0"])


def test_chunked_render_equals_unchunked():
    pair = ModelPair.create(TINY).eval()
    rays = rays_down_z(50)
    whole = render_chunked(pair, rays, RenderSettings(n_coarse=8, n_fine=8, chunk=1000))
    chunked = render_chunked(pair, rays, RenderSettings(n_coarse=8, n_fine=8, chunk=7))
    for k in ("rgb", "depth", "acc"):
        torch.testing.assert_close(chunked[k], whole[k], atol=1e-6, rtol=1e-5)
    direct = render_rays(pair, rays, RenderSettings(n_coarse=8, n_fine=8))
    torch.testing.assert_close(whole["rgb"], direct["rgb"], atol=1e-6, rtol=1e-5)


def test_networks_see_at_most_net_chunk_points_per_call_with_the_same_image():
    """Whole rays of at most `net_chunk` points go through a network per call (CPU default: NET_CHUNK),
    and the image does not depend on it."""
    rays = rays_down_z(300)
    reference = ModelPair.create(TINY).eval()
    whole = render_rays(reference, rays, RenderSettings(n_coarse=8, n_fine=8, net_chunk=10**6))
    for net_chunk, per_call in ((100, 96), (None, NET_CHUNK)):
        out = render_rays(reference, rays, RenderSettings(n_coarse=8, n_fine=8, net_chunk=net_chunk))
        for k in ("rgb", "depth", "acc"):
            torch.testing.assert_close(out[k], whole[k], atol=1e-6, rtol=1e-5)
        pair = plane_pair(1.0)
        render_rays(pair, rays, RenderSettings(n_coarse=8, n_fine=16, net_chunk=net_chunk))
        assert max(pair.coarse.calls) == min(per_call, 300 * 8) and sum(pair.coarse.calls) == 300 * 8
        assert max(pair.fine.calls) <= per_call and sum(pair.fine.calls) == 300 * 24
    with pytest.raises(ValueError, match="net_chunk"):
        RenderSettings(net_chunk=0)


def test_a_network_with_narrow_activations_takes_more_points_per_call():
    """bf16 and int8 networks ask for NARROW_NET_CHUNK points per call in their `meta`; fp32 keeps NET_CHUNK,
    and an explicit net_chunk wins over both."""
    rays = rays_down_z(1000)  # 1000 x 16 points: more than NET_CHUNK, fewer than NARROW_NET_CHUNK
    for ask, per_call in ((NARROW_NET_CHUNK, 1000 * 16), (None, NET_CHUNK)):
        pair = plane_pair(1.0)
        if ask is not None:
            pair.coarse.meta = {POINTS_PER_CALL: ask}
        render_rays(pair, rays, RenderSettings(n_coarse=16, n_fine=0))
        assert max(pair.coarse.calls) == per_call
        pair.coarse.calls.clear()
        render_rays(pair, rays, RenderSettings(n_coarse=16, n_fine=0, net_chunk=800))
        assert max(pair.coarse.calls) == 800
    torch.manual_seed(0)
    float_pair = ModelPair.create(TINY)
    assert get_compressor("bf16").compress(float_pair, None).fine.meta[POINTS_PER_CALL] == NARROW_NET_CHUNK
    assert getattr(float_pair.fine, "meta", None) is None  # fp32 asks for nothing


def test_render_is_bit_identical_across_calls():
    pair = ModelPair.create(TINY).eval()
    rays = rays_down_z(40)
    a = render_chunked(pair, rays, SETTINGS)
    b = render_chunked(pair, rays, SETTINGS)
    for k in ("rgb", "depth", "acc"):
        assert torch.equal(a[k], b[k])


def test_output_shapes_and_network_cost_are_linear_in_rays():
    settings = RenderSettings(n_coarse=8, n_fine=16, chunk=16)
    for n in (1, 16, 37):
        pair = plane_pair(1.0)
        out = render_chunked(pair, rays_down_z(n), settings)
        assert out["rgb"].shape == (n, 3) and out["depth"].shape == (n,) and out["acc"].shape == (n,)
        assert pair.coarse.points == n * settings.n_coarse
        assert pair.fine.points == n * (settings.n_coarse + settings.n_fine)


def test_empty_ray_batch_renders_nothing():
    out = render_chunked(ModelPair.create(TINY), rays_down_z(0), SETTINGS)
    assert out["rgb"].numel() == 0
