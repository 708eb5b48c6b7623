"""The coarse-grid accelerator: the coarse network's density baked into a table that places the fine
samples, the coarse network run only outside the table's box, the table saved with the model, and
composition with the other compressors (which still calibrate the coarse network itself)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nerf_eval.checkpoint import load_torch_file
from nerf_eval.compress import get_compressor, serialized_size
from nerf_eval.compress.coarse_grid import DensityGrid, bake_coarse_grid, coarse_grid_pair
from nerf_eval.compress.finetune import finetune
from nerf_eval.compress.quantize import STATIC_INT8_META
from nerf_eval.compress.saved import load_compressed, save_compressed
from nerf_eval.errors import CheckpointError, CompressorError
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import OCCUPANCY_KEY, PROPOSAL_KEY, Rays, RenderSettings, render_chunked, render_rays
from pytest_nerfcompress.testing import tiny_pair

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)
SETTINGS = RenderSettings(n_coarse=16, n_fine=32, chunk=512)


class LinearField(nn.Module):
    """Density 4.5 - 2z + 0.5x (positive over the rays below, and linear, so a trilinear table of it is
    exact up to fp16), colour varying with position. Reads the point from the encoding's first 3 entries
    and counts the points it is asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.points = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.points += x.shape[0]
        p = x[:, :3]
        sigma = 4.5 - 2.0 * p[:, 2] + 0.5 * p[:, 0]
        return torch.cat([3.0 * p, sigma[:, None]], -1)


class SlantedField(LinearField):
    """LinearField's raw density less 3: negative over part of the rays below."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) - torch.tensor([0.0, 0.0, 0.0, 3.0])


def linear_pair() -> ModelPair:
    return ModelPair(LinearField(), LinearField(), TINY)


def rays_down_z(n: int, x_offset: float = 0.0) -> Rays:
    """n x n parallel rays from z = 4 looking down -z over [-1, 1]^2 (shifted by x_offset), near 2, far 6."""
    xy = torch.stack(torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij"), -1)
    xy = xy.reshape(-1, 2) + torch.tensor([x_offset, 0.0])
    o = torch.cat([xy, torch.full((xy.shape[0], 1), 4.0)], -1)
    return Rays.from_od(o, torch.tensor([0.0, 0.0, -1.0]).expand_as(o), 2.0, 6.0)


def test_the_table_interpolates_between_its_vertices_and_knows_its_box():
    values = torch.arange(8, dtype=torch.float32).reshape(2, 2, 2)  # value = 4i + 2j + k
    grid = DensityGrid(torch.zeros(3), torch.ones(3), values)
    pts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [0.25, 0.0, 1.0], [1.5, 0.5, 0.5],
                        [math.nan, 0.5, 0.5]])
    sigma, inside = grid.density(pts)
    torch.testing.assert_close(sigma[:4], torch.tensor([0.0, 7.0, 3.5, 2.0]))
    assert inside.tolist() == [True, True, True, True, False, False]
    assert grid.resolution == (1, 1, 1) and grid.values.dtype == torch.float16
    for bad in (torch.zeros(1, 2, 2), torch.full((2, 2, 2), 1e6), torch.full((2, 2, 2), math.inf)):
        with pytest.raises(ValueError, match="density grid"):
            DensityGrid(torch.zeros(3), torch.ones(3), bad)
    with pytest.raises(ValueError, match="density grid bounds must be finite with upper > lower"):
        DensityGrid(torch.zeros(3), torch.zeros(3), values)


def test_the_table_holds_raw_density_and_applies_the_relu_after_interpolating():
    # raw density -1 at x = 0 and +1 at x = 1: the surface starts half way, where the raw values cross zero;
    # a table of the non-negative density (0 and 1) would put density 0.25 a quarter of the way in
    values = torch.tensor([-1.0, 1.0])[:, None, None].expand(2, 2, 2)
    grid = DensityGrid(torch.zeros(3), torch.ones(3), values)
    sigma, _ = grid.density(torch.tensor([[0.25, 0.5, 0.5], [0.5, 0.5, 0.5], [0.75, 0.5, 0.5]]))
    torch.testing.assert_close(sigma, torch.tensor([0.0, 0.0, 0.5]))
    baked = bake_coarse_grid(ModelPair(SlantedField(), None, TINY), rays_down_z(4), resolution=4)
    assert (baked.values < 0).any() and (baked.values > 0).any()  # the field's raw output, before its ReLU
    pts = torch.rand(64, 3, generator=torch.Generator().manual_seed(0)) * (baked.upper - baked.lower) + baked.lower
    raw = SlantedField()(pts)[:, 3]
    torch.testing.assert_close(baked.density(pts)[0], raw.relu(), atol=2e-3, rtol=0)  # linear: exact up to fp16
    # a table of non-negative densities (the earlier format) reads back the same as before
    older = {**grid.to_state(), "format": "coarse-density-grid-v1", "values": values.clamp(min=0).half()}
    torch.testing.assert_close(DensityGrid.from_state(older).density(torch.tensor([[0.25, 0.5, 0.5]]))[0],
                               torch.tensor([0.25]))
    with pytest.raises(ValueError, match="has negative densities"):
        DensityGrid.from_state({**older, "values": values.half()})


def test_the_coarse_pass_reads_the_table_and_renders_the_same_image():
    rays = rays_down_z(12)
    plain = linear_pair()
    ref = render_chunked(plain, rays, SETTINGS)
    baked = coarse_grid_pair(linear_pair(), rays, resolution=4)
    baked.coarse.points = baked.fine.points = 0  # baking counted too
    out = render_chunked(baked, rays, SETTINGS)
    assert baked.coarse.points == 0 and baked.fine.points == len(rays) * 48  # no coarse network call at all
    torch.testing.assert_close(out["rgb"], ref["rgb"], atol=2e-3, rtol=0)
    torch.testing.assert_close(out["depth"], ref["depth"], atol=5e-3, rtol=0)
    with torch.inference_mode():  # the coarse pass's depth and opacity are the table's, not made up
        a, b = render_rays(plain, rays, SETTINGS), render_rays(baked, rays, SETTINGS)
    torch.testing.assert_close(b["depth0"], a["depth0"], atol=5e-3, rtol=0)
    torch.testing.assert_close(b["acc0"], a["acc0"], atol=1e-3, rtol=0)


def test_outside_the_box_the_coarse_network_still_runs():
    baked = coarse_grid_pair(linear_pair(), rays_down_z(8), resolution=4)
    shifted = rays_down_z(8, x_offset=1.5)  # some rays beside the calibration box, some over it
    baked.coarse.points = 0
    out = render_chunked(baked, shifted, SETTINGS)
    ref = render_chunked(linear_pair(), shifted, SETTINGS)
    outside = int((shifted.origins[:, 0] > 1.0 + 1e-3).sum())
    assert 0 < outside < len(shifted) and baked.coarse.points == outside * 16
    torch.testing.assert_close(out["rgb"], ref["rgb"], atol=2e-3, rtol=0)


def test_save_and_load_keep_the_table_and_the_renders(tmp_path):
    pair, cal = tiny_pair(), rays_down_z(8)
    small = get_compressor("coarse-grid:6").compress(pair, cal)
    assert small.coarse is not pair.coarse and PROPOSAL_KEY not in pair.meta  # a copy; the input is untouched
    path = save_compressed(tmp_path / "cg.pt", small, "coarse-grid:6")
    raw = load_torch_file(path)  # weights_only=True
    assert tuple(raw[PROPOSAL_KEY]["values"].shape) == (7, 7, 7)
    back = load_compressed(path)
    a, b = small.meta[PROPOSAL_KEY], back.meta[PROPOSAL_KEY]
    assert torch.equal(a.values, b.values) and torch.equal(a.lower, b.lower) and a.info == b.info
    x, y = render_chunked(small, cal, SETTINGS), render_chunked(back, cal, SETTINGS)
    assert all(torch.equal(x[k], y[k]) for k in x)
    assert serialized_size(small) - serialized_size(pair) >= 7 ** 3 * 2  # the fp16 table is part of the size


def test_a_damaged_table_is_a_one_line_error(tmp_path):
    small = get_compressor("coarse-grid:4").compress(tiny_pair(), rays_down_z(6))
    obj = load_torch_file(save_compressed(tmp_path / "cg.pt", small, "coarse-grid:4"))
    obj[PROPOSAL_KEY]["values"] = obj[PROPOSAL_KEY]["values"][0]
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="bad coarse density grid") as info:
        load_compressed(tmp_path / "bad.pt")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", ["coarse-grid:4+int8-ptq-both:64", "int8-ptq-both:64+coarse-grid:4",
                                  "samples:16:coarse=8+occupancy:8+coarse-grid:4"])
def test_composes_and_the_others_still_calibrate_the_coarse_network(spec, tmp_path):
    pair, cal = tiny_pair(), rays_down_z(8)
    small = get_compressor(spec).compress(pair, cal)
    assert isinstance(small.meta[PROPOSAL_KEY], DensityGrid)
    if "int8" in spec:  # its coarse network was quantized from its own inputs, not from an empty recording
        assert all(STATIC_INT8_META in getattr(n, "meta", {}) for n in small.networks().values())
    if "occupancy" in spec:
        assert small.meta[OCCUPANCY_KEY].info["samples"] == [8, 16]
    out = render_chunked(small, cal, SETTINGS)
    assert torch.isfinite(out["rgb"]).all()
    back = load_compressed(save_compressed(tmp_path / "m.pt", small, spec))
    torch.testing.assert_close(render_chunked(back, cal, SETTINGS)["rgb"], out["rgb"], atol=1e-5, rtol=0)


def test_refusals_and_spec_errors():
    cal = rays_down_z(4)
    assert get_compressor("coarse-grid:res=3").compress(tiny_pair(), cal).meta[PROPOSAL_KEY].resolution == (3, 3, 3)
    for bad in ("coarse-grid:0", "coarse-grid:big", "coarse-grid:colour=red"):
        with pytest.raises(CompressorError, match="coarse-grid"):
            get_compressor(bad)
    with pytest.raises(CompressorError, match="empty calibration"):
        bake_coarse_grid(tiny_pair(), rays_down_z(0))
    coarse_only = tiny_pair()
    coarse_only.fine = None
    with pytest.raises(CompressorError, match="no fine network"):
        coarse_grid_pair(coarse_only, cal)
    baked = coarse_grid_pair(tiny_pair(), cal, resolution=2)
    with pytest.raises(CompressorError, match="fine-tune first"):
        finetune(baked, scene=None, steps=1)  # type: ignore[arg-type]
