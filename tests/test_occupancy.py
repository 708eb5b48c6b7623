"""The occupancy accelerator: a conservative grid baked from the model's density, renders that skip
empty space and stop early, the grid saved with the model, and composition with other compressors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nerf_eval.checkpoint import load_torch_file
from nerf_eval.compress import get_compressor, serialized_size
from nerf_eval.compress.occupancy import (OccupancyGrid, bake_occupancy, calibration_bounds, face_margin,
                                         occupancy_pair)
from nerf_eval.compress.quantize import STATIC_INT8_META
from nerf_eval.compress.saved import load_compressed, save_compressed
from nerf_eval.errors import CheckpointError, CompressorError
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import (OCCUPANCY_KEY, Rays, RenderSettings, predicted_stop, query_occupied, render_chunked,
                              render_rays, sample_distances, volume_render)
from pytest_nerfcompress.testing import tiny_pair

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)
SETTINGS = RenderSettings(n_coarse=16, n_fine=32, chunk=512)
RADIUS, SIGMA = 0.5, 50.0


class SphereField(nn.Module):
    """Density SIGMA inside a ball of `radius` at the origin, nothing outside; colour varies with position.
    Reads the point from the encoding's first 3 entries and counts the points and calls it is asked about."""

    def __init__(self, radius: float = RADIUS) -> None:
        super().__init__()
        self.radius = radius
        self.points = self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.points += x.shape[0]
        self.calls += 1
        p = x[:, :3]
        sigma = torch.where(p.norm(dim=-1) < self.radius, SIGMA, 0.0)
        return torch.cat([3.0 * p, sigma[:, None]], -1)


def sphere_pair(fine_radius: float = RADIUS) -> ModelPair:
    return ModelPair(SphereField(), SphereField(fine_radius), TINY)


def rays_down_z(n: int, seed: int | None = None) -> Rays:
    """n x n parallel rays from z = 4 looking down -z over [-1, 1]^2 (jittered when seeded), near 2, far 6."""
    xy = torch.stack(torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij"), -1)
    xy = xy.reshape(-1, 2)
    if seed is not None:
        xy = (xy + 0.05 * torch.randn(xy.shape, generator=torch.Generator().manual_seed(seed))).clamp(-1, 1)
    o = torch.cat([xy, torch.full((xy.shape[0], 1), 4.0)], -1)
    return Rays.from_od(o, torch.tensor([0.0, 0.0, -1.0]).expand_as(o), 2.0, 6.0)


def counted(pair: ModelPair) -> tuple[int, int]:
    return pair.coarse.points, pair.fine.points


def test_grid_is_conservative_around_the_density_and_tight_away_from_it():
    cal = rays_down_z(24, seed=0)
    grid = bake_occupancy(sphere_pair(), cal, resolution=16, threshold=0.01, rays=64, settings=SETTINGS)
    lower, upper = calibration_bounds(cal)
    assert torch.equal(grid.lower, lower) and torch.equal(grid.upper, upper)
    g = torch.Generator().manual_seed(1)
    pts = lower + (upper - lower) * torch.rand(200_000, 3, generator=g)
    step = grid.info["step"]
    dense = 1.0 - torch.exp(-torch.where(pts.norm(dim=-1) < RADIUS, SIGMA, 0.0) * step) > 0.01
    cell = float(((upper - lower) / 16).max())
    far = pts.norm(dim=-1) > RADIUS + 3 * cell  # beyond the one-cell margin (and the cell it rounds to)
    ball = 4 / 3 * math.pi * RADIUS ** 3 / float((upper - lower).prod())  # the share of the box that is dense
    for network in ("coarse", "fine"):
        occupied = grid.occupied(pts, network)
        assert dense.any() and occupied[dense].all()  # every point whose alpha exceeds the threshold is kept
        assert not occupied[far].any()
        assert ball < grid.info[f"{network}_occupied_before_dilation"] < 1.5 * ball
    assert grid.occupied_fraction < 4 * ball


def test_the_margin_is_the_cells_across_each_face():
    cells = torch.zeros(5, 6, 7, dtype=torch.bool)
    cells[2, 3, 3] = True  # inside: itself and its 6 face neighbours
    cells[0, 0, 6] = True  # a corner of the grid: itself and the 3 neighbours inside it
    margin = face_margin(cells)
    expected = {(2, 3, 3), (1, 3, 3), (3, 3, 3), (2, 2, 3), (2, 4, 3), (2, 3, 2), (2, 3, 4),
                (0, 0, 6), (1, 0, 6), (0, 1, 6), (0, 0, 5)}
    assert {tuple(i) for i in margin.nonzero().tolist()} == expected
    assert int(cells.sum()) == 2  # the input is left as it was
    assert not face_margin(torch.zeros(1, 1, 1, dtype=torch.bool)).any()


def test_each_pass_skips_by_its_own_networks_density():
    cal = rays_down_z(24, seed=0)
    rays = rays_down_z(32)
    small = 0.25  # the fine network's ball: the coarse network's density reaches twice as far
    grid = bake_occupancy(sphere_pair(small), cal, resolution=16, rays=64, settings=SETTINGS)
    assert grid.info["fine_occupied"] < 0.5 * grid.info["coarse_occupied"]
    pts = torch.tensor([[0.4, 0.0, 0.0], [0.0, 0.0, 0.0]])  # in the coarse ball only; in both
    assert grid.occupied(pts, "coarse").tolist() == [True, True] and grid.occupied(pts, "fine").tolist() == [False, True]
    both = OccupancyGrid(grid.lower, grid.upper, grid.cells | grid.fine_cells, grid.stop_transmittance)
    plain, own, one = sphere_pair(small), sphere_pair(small), sphere_pair(small)
    ref = render_chunked(plain, rays, SETTINGS)
    out = render_chunked(ModelPair(own.coarse, own.fine, TINY, {OCCUPANCY_KEY: grid}), rays, SETTINGS)
    render_chunked(ModelPair(one.coarse, one.fine, TINY, {OCCUPANCY_KEY: both}), rays, SETTINGS)
    assert own.coarse.points == one.coarse.points and own.fine.points < 0.8 * one.fine.points
    torch.testing.assert_close(out["rgb"], ref["rgb"], atol=2 * grid.stop_transmittance, rtol=0)
    torch.testing.assert_close(out["acc"], ref["acc"], atol=2 * grid.stop_transmittance, rtol=0)


def test_points_outside_the_box_or_not_finite_count_as_occupied():
    cells = torch.zeros(4, 4, 4, dtype=torch.bool)
    cells[1, 2, 3] = True
    grid = OccupancyGrid(torch.zeros(3), torch.ones(3), cells)
    pts = torch.tensor([[0.3, 0.6, 0.9], [0.1, 0.1, 0.1], [1.5, 0.5, 0.5], [-0.1, 0.5, 0.5],
                        [float("nan"), 0.5, 0.5], [0.5, float("inf"), 0.5], [1.0, 0.5, 0.5]])
    for network in ("coarse", "fine"):  # without fine cells, one grid serves both passes
        assert grid.occupied(pts, network).tolist() == [True, False, True, True, True, True, True]
    assert grid.occupied(pts.reshape(7, 1, 3), "fine").shape == (7, 1)
    with pytest.raises(ValueError, match="per network"):
        grid.occupied(pts, "both")


def test_state_round_trip_keeps_every_cell():
    g = torch.Generator().manual_seed(0)
    cells = torch.rand(5, 7, 3, generator=g) < 0.3  # 105 cells: not a multiple of 8
    fine = torch.rand(5, 7, 3, generator=g) < 0.3
    grid = OccupancyGrid(torch.tensor([-1.0, -2.0, 0.0]), torch.tensor([1.0, 2.0, 0.5]), cells, 1e-3, {"a": 1}, fine)
    back = OccupancyGrid.from_state(grid.to_state())
    assert torch.equal(back.cells, cells) and torch.equal(back.fine_cells, fine) and torch.equal(back.lower, grid.lower)
    assert torch.equal(back.upper, grid.upper) and back.stop_transmittance == 1e-3 and back.info == {"a": 1}
    with pytest.raises(ValueError):
        OccupancyGrid.from_state({**grid.to_state(), "resolution": [5, 7, 4]})
    with pytest.raises(ValueError, match="do not match"):
        OccupancyGrid.from_state({**grid.to_state(), "packed_fine_cells": torch.zeros(3, dtype=torch.uint8)})
    # a file of the one-grid format (both networks' density in one grid, for both passes) loads as it rendered
    one = {**OccupancyGrid(grid.lower, grid.upper, cells | fine, 1e-4).to_state(), "format": "occupancy-grid-v1"}
    old = OccupancyGrid.from_state(one)
    assert old.fine_cells is None and old.stop_transmittance == 1e-4
    assert torch.equal(old.network_cells("fine"), cells | fine) and torch.equal(old.network_cells("coarse"), cells | fine)


@pytest.mark.parametrize("stop", [0.0, 1e-4])
def test_a_full_grid_renders_as_no_grid(stop):
    pair = tiny_pair()
    rays = rays_down_z(12)
    plain = render_rays(pair, rays, SETTINGS)
    lower, upper = calibration_bounds(rays)
    gridded = ModelPair(pair.coarse, pair.fine, pair.config,
                        {OCCUPANCY_KEY: OccupancyGrid.full(lower, upper, 4, stop_transmittance=stop)})
    fast = render_rays(gridded, rays, SETTINGS)
    for k in ("rgb", "depth", "acc", "rgb0", "depth0", "acc0"):
        if stop == 0.0:
            assert torch.equal(fast[k], plain[k]), k
        elif k in ("rgb", "acc"):  # what early stopping skips is at most the remaining transmittance
            torch.testing.assert_close(fast[k], plain[k], atol=2 * stop, rtol=0)


def test_empty_space_is_skipped_with_the_same_image():
    cal = rays_down_z(24, seed=0)
    rays = rays_down_z(32)
    plain = sphere_pair()
    fast = occupancy_pair(sphere_pair(), cal, resolution=16, rays=64)
    ref = render_chunked(plain, rays, SETTINGS)
    full_cost = counted(plain)
    fast.coarse.points = fast.fine.points = 0  # baking counted too
    out = render_chunked(fast, rays, SETTINGS)
    cost = counted(fast)
    assert full_cost == (len(rays) * 16, len(rays) * 48)
    assert cost[0] < 0.15 * full_cost[0] and cost[1] < 0.2 * full_cost[1]
    hit = ref["acc"] > 0.5
    assert 0.1 < hit.float().mean() < 0.5  # a scene with both surface and empty space
    stop = fast.meta[OCCUPANCY_KEY].stop_transmittance  # what a stopped ray skips is below its transmittance
    torch.testing.assert_close(out["rgb"], ref["rgb"], atol=stop, rtol=0)
    torch.testing.assert_close(out["acc"], ref["acc"], atol=stop, rtol=0)
    torch.testing.assert_close(out["depth"], ref["depth"], atol=stop * float(rays.far.max()), rtol=0)
    fast.meta[OCCUPANCY_KEY].stop_transmittance = 0.0  # the grid alone: early stopping saves fine points
    fast.coarse.points = fast.fine.points = 0
    no_stop = render_chunked(fast, rays, SETTINGS)
    assert counted(fast)[0] == cost[0] and counted(fast)[1] > cost[1]
    torch.testing.assert_close(no_stop["rgb"], ref["rgb"], atol=1e-6, rtol=0)


def test_marching_stops_rays_and_its_first_step_saves_network_calls():
    net = SphereField()
    rays = rays_down_z(8)  # a ray through the ball crosses up to 1.0 of density SIGMA: opaque after two samples
    z = torch.linspace(2.0, 6.0, 48).expand(len(rays), 48)
    pts = rays.origins[:, None] + rays.directions[:, None] * z[..., None]
    keep = torch.ones(pts.shape[:2], dtype=torch.bool)
    dists = sample_distances(z, rays.directions)
    args = (net, TINY, pts, rays.viewdirs, keep)

    def run(**kw) -> tuple[torch.Tensor, int, int]:
        net.calls = net.points = 0
        raw = query_occupied(*args, **kw)
        return volume_render(raw, z, rays.directions)["rgb"], net.calls, net.points

    plain, calls, points = run()
    assert calls == 1 and points == keep.numel()
    marched, marching_calls, marched_points = run(dists=dists, stop_transmittance=1e-3)
    assert marching_calls == 3 and marched_points < points  # 16 samples a step; stopped rays skip the rest
    torch.testing.assert_close(marched, plain, atol=2e-3, rtol=0)
    first = torch.full((len(rays),), 32)  # the rays through the ball stop inside it, the others march on
    stepped, first_calls, stepped_points = run(dists=dists, stop_transmittance=1e-3, first_step=first)
    assert first_calls == 2 and stepped_points < points and torch.equal(stepped, marched)
    everything, one_call, _ = run(dists=dists, stop_transmittance=1e-3, first_step=keep.sum(-1))
    assert one_call == 1 and torch.equal(everything, plain)  # a first step holding every sample


def test_the_first_step_reaches_where_the_coarse_transmittance_stops():
    z_coarse = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    weights = torch.tensor([[0.2, 0.7999, 0.0001, 0.0], [0.1, 0.1, 0.1, 0.1], [0.2, 0.7999, 0.0001, 0.0]])
    z_all = torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5, 3.0]).expand(3, 6)
    keep = torch.ones(3, 6, dtype=torch.bool)
    keep[2, 1] = False
    # transmittance 1e-4 behind the second coarse sample (z = 2); the second ray never gets there
    assert predicted_stop(weights, z_coarse, z_all, keep, 1e-3).tolist() == [4, 6, 3]
    assert predicted_stop(weights, z_coarse, z_all, keep, 1e-5).tolist() == [6, 6, 5]


def test_save_and_load_keep_the_grid_and_the_renders(tmp_path):
    pair = tiny_pair()
    cal = rays_down_z(16, seed=0)
    small = get_compressor("occupancy:8").compress(pair, cal)
    assert small.coarse is not pair.coarse and OCCUPANCY_KEY not in pair.meta  # a copy; the input is untouched
    path = save_compressed(tmp_path / "occ.pt", small, "occupancy:8")
    raw = load_torch_file(path)  # weights_only=True
    assert raw[OCCUPANCY_KEY]["resolution"] == [8, 8, 8]
    back = load_compressed(path)
    a, b = small.meta[OCCUPANCY_KEY], back.meta[OCCUPANCY_KEY]
    assert torch.equal(a.cells, b.cells) and torch.equal(a.lower, b.lower) and torch.equal(a.upper, b.upper)
    assert a.stop_transmittance == b.stop_transmittance and a.info == b.info
    rays = rays_down_z(10)
    x, y = render_chunked(small, rays, SETTINGS), render_chunked(back, rays, SETTINGS)
    assert all(torch.equal(x[k], y[k]) for k in x)
    assert serialized_size(small) > serialized_size(pair)  # the grid is part of the model's size


def test_a_damaged_grid_is_a_one_line_error(tmp_path):
    small = get_compressor("occupancy:4").compress(tiny_pair(), rays_down_z(8, seed=0))
    path = save_compressed(tmp_path / "occ.pt", small, "occupancy:4")
    obj = load_torch_file(path)
    obj[OCCUPANCY_KEY]["packed_cells"] = obj[OCCUPANCY_KEY]["packed_cells"][:-1]
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="bad occupancy grid") as info:
        load_compressed(tmp_path / "bad.pt")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", ["occupancy:8+int8-ptq-both:64", "int8-ptq-both:64+occupancy:8"])
def test_composes_with_int8_in_either_order(spec, tmp_path):
    pair = tiny_pair()
    cal = rays_down_z(16, seed=0)
    comp = get_compressor(spec)
    assert comp.gates["psnr_drop"] == pytest.approx(0.4)
    small = comp.compress(pair, cal)
    assert isinstance(small.meta[OCCUPANCY_KEY], OccupancyGrid)
    assert all(STATIC_INT8_META in getattr(n, "meta", {}) for n in small.networks().values())
    rays = rays_down_z(10)
    ref, out = render_chunked(pair, rays, SETTINGS), render_chunked(small, rays, SETTINGS)
    mse = float(((out["rgb"] - ref["rgb"]) ** 2).mean())
    assert -10 * math.log10(max(mse, 1e-12)) > 35  # int8's error only: the grid drops nothing that shows
    back = load_compressed(save_compressed(tmp_path / "m.pt", small, spec))
    assert torch.equal(back.meta[OCCUPANCY_KEY].cells, small.meta[OCCUPANCY_KEY].cells)
    y = render_chunked(back, rays, SETTINGS)
    torch.testing.assert_close(y["rgb"], out["rgb"], atol=1e-6, rtol=0)


def test_spec_options_and_errors():
    comp = get_compressor("occupancy:4:threshold=0.2:stop=0:jitter=2:rays=8")
    assert comp.gates == {"psnr_drop": 0.1, "worst_psnr_drop": 0.2, "ssim_drop": 0.002}
    grid = comp.compress(tiny_pair(), rays_down_z(8, seed=0)).meta[OCCUPANCY_KEY]
    assert grid.resolution == (4, 4, 4) and grid.stop_transmittance == 0.0
    assert grid.info["threshold"] == 0.2 and grid.info["jitter"] == 2 and grid.info["calibration_rays"] == 8
    assert get_compressor("occupancy:res=6").compress(tiny_pair(), rays_down_z(4)).meta[OCCUPANCY_KEY].resolution \
        == (6, 6, 6)
    for bad in ("occupancy:0", "occupancy:big", "occupancy:threshold=1.5", "occupancy:colour=red"):
        with pytest.raises(CompressorError, match="occupancy"):
            get_compressor(bad)
    with pytest.raises(CompressorError, match="empty calibration"):
        get_compressor("occupancy:4").compress(tiny_pair(), rays_down_z(0))
