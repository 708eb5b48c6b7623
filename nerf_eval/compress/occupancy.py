"""Skip empty space, stop early: an occupancy grid baked from the model's own density.

`occupancy` is registered like a compressor and composes with the others (`occupancy+int8-ptq-both`,
`int8-ptq-both+occupancy`): it leaves the networks as they are and puts an `OccupancyGrid` into
`pair.meta["occupancy"]`, which `render_rays` reads (see `nerf_eval.render.SampleFilter`). Each network
then runs only on samples in occupied cells (empty ones get zero density), and the fine pass stops
a ray once its own transmittance falls below `stop_transmittance` (marching front to back; what it
skips can change the pixel by about that much).

Baking (`bake_occupancy`): the grid spans the axis-aligned box of the calibration rays between near
and far (in NDC for forward-facing scenes, about [-1, 1]^3); points outside it count as occupied, so a
camera off the calibration box loses nothing, it only skips less. Each network gets its own cells, from
its own density, evaluated at `jitter` random points in every cell and at every sample the calibration
rays render at (the coarse network at the coarse samples, the fine one at all, so surfaces seen by the
training cameras are hit where they are); a cell is occupied where any sample's alpha over a typical
step (the mean spacing of the fine pass's samples on the calibration rays) exceeds `threshold`, and each
grid then gains a margin of the cells that share a face with an occupied one, for thin features that pass
between a cell's jittered points: density that runs on from a cell where it was found into one where it
was not crosses a face, and the 20 neighbours across edges and corners (the rest of a 3x3x3 block) only
add cells where nothing was found. On the val views of object, forward and flower the face margin queried
4%, 4% and 3.5% fewer fine samples than the 3x3x3 block for the same image (within 0.002 dB,
`reports/occupancy-margin/`). Each
pass skips by its own network's cells: a sample a pass skips has that network's alpha below the
threshold, which is what its composite sees (the coarse composite places the fine samples, so the coarse
pass must keep the coarse network's faint density, and does). One grid of both networks' density for
both passes kept, in the fine pass, the cells where only the coarse network has density (the two
networks are trained apart and disagree about haze): on the val views of forward, object and flower the
fine network's own cells leave 7%, 11-13% and 2.5% fewer fine samples to query for the same image (within
0.002 dB; `reports/occupancy-own-grids/`). One jittered point per cell missed a small dense feature on
object's val views; four do not.
The grid is stored bit-packed with the saved model (`to_state`/`from_state`: plain tensors and
values, loadable with `torch.load(..., weights_only=True)`).

Names: `occupancy[:RES][:threshold=T][:stop=E][:rays=N][:jitter=N]`, e.g. `occupancy:128:threshold=0.003`.
The grid is a snapshot of the density: put `occupancy` after stages that change the geometry (pruning,
fine-tuning), or the grid describes the network before them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nerf_eval.compress.base import FunctionCompressor, check_calibration, register
from nerf_eval.compress.params import CompressorSpec, Param
from nerf_eval.compress.quantize.calibration import calibration_subset
from nerf_eval.errors import CompressorError, describe
from nerf_eval.interrupt import stop_point
from nerf_eval.model import ModelPair
from nerf_eval.render import (OCCUPANCY_KEY, Rays, RenderSettings, capped_settings, query_network, render_rays,
                              with_coarse_network)
from nerf_eval.sampling import stratified_samples

DEFAULT_RESOLUTION = 64
# Alpha over a typical step below which a sample counts as empty. Chosen on val views, never the test
# views reported (reports/occupancy-threshold): on object every threshold from 0.01 to 0.0003 is lossless;
# on flower's val views (val=train) 0.01 lost 0.46 dB (its faint haze, summed over many samples, is
# visible) and 0.001 loses 0.04 dB. 0.001 bounds the opacity dropped along a 192-sample ray at about 0.2.
DEFAULT_THRESHOLD = 0.001
# Transmittance below which the fine pass stops a ray: what it skips can change a pixel by at most that much,
# less than one 8-bit colour step (1/255). On the val views of forward, object and flower, 3e-3 against 1e-3
# moved no PSNR drop by more than 0.001 dB nor SSIM drop by more than 0.00001, and queried 4.5% fewer fine
# samples on forward (1.06x on a val view; about the same elsewhere); 1e-2 moved forward's SSIM drop by
# 0.0003 (reports/occupancy-margin/*-val-stop.log; 1e-3 against 1e-4 in reports/occupancy-own-grids/).
DEFAULT_STOP = 3e-3
DEFAULT_RAYS = 1024  # calibration rays whose own samples are baked in (beside the jittered cell points)
DEFAULT_JITTER = 4  # random points per cell (one missed a small dense feature on object's val views)
OCCUPANCY_GATES = {"psnr_drop": 0.1, "worst_psnr_drop": 0.2, "ssim_drop": 0.002}
STATE_FORMAT = "occupancy-grid-v2"
_ONE_GRID_FORMAT = "occupancy-grid-v1"  # one grid (both networks' density) for both passes
_POINTS_PER_BATCH = 65536


def checked_box(lower: Any, upper: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The corners of a grid's box as fp32 (3,) tensors; ValueError naming `what` (e.g. "occupancy grid")
    unless both have 3 finite values with upper > lower."""
    lower = torch.as_tensor(lower, dtype=torch.float32).reshape(-1)
    upper = torch.as_tensor(upper, dtype=torch.float32).reshape(-1)
    if lower.numel() != 3 or upper.numel() != 3:
        raise ValueError(f"{what} bounds need 3 values each")
    if not (torch.isfinite(lower).all() and torch.isfinite(upper).all() and (upper > lower).all()):
        raise ValueError(f"{what} bounds must be finite with upper > lower: {lower.tolist()} .. {upper.tolist()}")
    return lower, upper


@dataclass(eq=False)
class OccupancyGrid:
    """Boolean grids over the box [lower, upper] (3,): `cells[i, j, k]` says whether cell (i, j, k) may
    hold density of the coarse network, `fine_cells` (same shape) of the fine network; without
    `fine_cells`, `cells` serve both passes. `occupied` is conservative: False only inside the box in an
    empty cell.

    `stop_transmittance` is the renderer's early-stopping threshold (0 disables it); `info` records
    how the grid was baked (plain values only, it is saved with the grid)."""

    lower: torch.Tensor
    upper: torch.Tensor
    cells: torch.Tensor
    stop_transmittance: float = DEFAULT_STOP
    info: dict[str, Any] = field(default_factory=dict)
    fine_cells: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.lower, self.upper = checked_box(self.lower, self.upper, "occupancy grid")
        for name, cells in (("cells", self.cells), ("fine cells", self.fine_cells)):
            if cells is None and name == "fine cells":
                continue
            if cells.dtype != torch.bool or cells.dim() != 3 or min(cells.shape) < 1:
                raise ValueError(f"occupancy {name} must be a 3-D bool tensor, got {cells.dtype} "
                                 f"{tuple(cells.shape)}")
        if self.fine_cells is not None and self.fine_cells.shape != self.cells.shape:
            raise ValueError(f"occupancy fine cells {tuple(self.fine_cells.shape)} do not match the coarse "
                             f"cells {tuple(self.cells.shape)}")
        stop = float(self.stop_transmittance)
        if not 0.0 <= stop < 1.0:
            raise ValueError(f"stop transmittance must be in [0, 1), got {stop}")
        self.stop_transmittance = stop

    def network_cells(self, network: str) -> torch.Tensor:
        """The cells the pass of `network` ("coarse" or "fine") skips by."""
        if network not in ("coarse", "fine"):
            raise ValueError(f"occupancy grids are per network, 'coarse' or 'fine', not {network!r}")
        return self.fine_cells if network == "fine" and self.fine_cells is not None else self.cells

    @property
    def resolution(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.cells.shape)  # type: ignore[return-value]

    @property
    def occupied_fraction(self) -> float:
        """Share of the cells where either network may hold density."""
        return float(self.network_cells("coarse").logical_or(self.network_cells("fine")).float().mean())

    def cell_index(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For points (..., 3): the flat index of the cell holding each point (clamped into the grid)
        and whether the point is inside the box at all (NaN points are not)."""
        p = points.reshape(-1, 3)
        lower, upper = self.lower.to(p.device), self.upper.to(p.device)
        res = torch.tensor(self.cells.shape, dtype=p.dtype, device=p.device)
        f = (p - lower) / (upper - lower) * res
        inside = ((f >= 0) & (f < res)).all(-1)
        f = torch.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
        ijk = torch.minimum(f.clamp(min=0.0).floor(), res - 1).long()
        _, ny, nz = self.cells.shape
        flat = (ijk[:, 0] * ny + ijk[:, 1]) * nz + ijk[:, 2]
        return flat.reshape(points.shape[:-1]), inside.reshape(points.shape[:-1])

    def occupied(self, points: torch.Tensor, network: str) -> torch.Tensor:
        """Bool mask (...,) for points (..., 3): True in the cells `network` ("coarse" or "fine") may hold
        density in and everywhere outside the box (nothing outside what was baked is ever dropped)."""
        cells = self.network_cells(network)
        flat, inside = self.cell_index(points)
        return cells.to(points.device).reshape(-1)[flat] | ~inside

    @classmethod
    def full(cls, lower, upper, resolution: int = 8, stop_transmittance: float = 0.0) -> "OccupancyGrid":
        """A grid with every cell occupied (skips nothing; with stop 0 it renders as no grid does)."""
        return cls(torch.as_tensor(lower), torch.as_tensor(upper),
                   torch.ones((resolution,) * 3, dtype=torch.bool), stop_transmittance)

    def to_state(self) -> dict[str, Any]:
        """Plain tensors and values (cells packed 8 per byte) for a weights-only torch file."""
        state = {"format": STATE_FORMAT, "lower": self.lower.clone(), "upper": self.upper.clone(),
                 "resolution": list(self.resolution), "packed_cells": _pack(self.cells),
                 "stop_transmittance": self.stop_transmittance, "info": dict(self.info)}
        if self.fine_cells is not None:
            state["packed_fine_cells"] = _pack(self.fine_cells)
        return state

    @classmethod
    def from_state(cls, state: Any) -> "OccupancyGrid":
        """The grid `to_state` wrote (or a one-grid file of format v1); ValueError naming what is wrong
        with anything else."""
        if not isinstance(state, dict) or state.get("format") not in (STATE_FORMAT, _ONE_GRID_FORMAT):
            raise ValueError(f"not an occupancy grid of format {STATE_FORMAT!r}")
        res = state.get("resolution")
        if (not isinstance(res, (list, tuple)) or len(res) != 3
                or not all(isinstance(n, int) and 0 < n <= 4096 for n in res)):
            raise ValueError(f"bad occupancy resolution {describe(res)}")
        for k in ("lower", "upper"):
            if not isinstance(state.get(k), torch.Tensor):
                raise ValueError(f"occupancy {k} bound is not a tensor")
        cells = _unpack(state.get("packed_cells"), res)
        fine = state.get("packed_fine_cells") if state["format"] == STATE_FORMAT else None
        info = state.get("info", {})
        return cls(state["lower"], state["upper"], cells, float(state.get("stop_transmittance", DEFAULT_STOP)),
                   dict(info) if isinstance(info, dict) else {}, None if fine is None else _unpack(fine, res))


def _pack(cells: torch.Tensor) -> torch.Tensor:
    """Bool cells as uint8, 8 per byte (the first cell in the highest bit)."""
    flat = cells.reshape(-1)
    pad = (-flat.numel()) % 8
    bits = torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, 8).to(torch.uint8)
    return (bits << torch.arange(7, -1, -1, dtype=torch.uint8)).sum(-1, dtype=torch.uint8)


def _unpack(packed: Any, res: list[int]) -> torch.Tensor:
    """The bool cells of shape `res` that `_pack` wrote; ValueError when they cannot be."""
    n = math.prod(res)
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.numel() != (n + 7) // 8:
        raise ValueError(f"occupancy cells do not match the resolution {list(res)}")
    bits = (packed.reshape(-1, 1) >> torch.arange(7, -1, -1, dtype=torch.uint8)) & 1
    return bits.reshape(-1)[:n].bool().reshape(res)


class _OutputRecorder(nn.Module):
    """Passes inputs through `net` and keeps each batch of raw outputs (in call order)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.outputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        self.outputs.append(out.detach().float())
        return out


def face_margin(cells: torch.Tensor) -> torch.Tensor:
    """Bool cells (X, Y, Z) with every cell that shares a face with an occupied one occupied too."""
    out = cells.clone()
    for axis in range(3):
        n = cells.shape[axis]
        out.narrow(axis, 1, n - 1).logical_or_(cells.narrow(axis, 0, n - 1))
        out.narrow(axis, 0, n - 1).logical_or_(cells.narrow(axis, 1, n - 1))
    return out


def calibration_bounds(calibration: Rays) -> tuple[torch.Tensor, torch.Tensor]:
    """The box holding every calibration ray between its near and far (the ends of the segments),
    padded by a hair so the far ends fall inside."""
    ends = torch.cat([calibration.origins + calibration.directions * calibration.near[:, None],
                      calibration.origins + calibration.directions * calibration.far[:, None]])
    lower, upper = ends.min(0).values, ends.max(0).values
    pad = 1e-4 * (upper - lower).clamp(min=1e-3)
    return lower - pad, upper + pad


def bake_occupancy(pair: ModelPair, calibration: Rays, resolution: int = DEFAULT_RESOLUTION,
                   threshold: float = DEFAULT_THRESHOLD, stop_transmittance: float = DEFAULT_STOP,
                   rays: int = DEFAULT_RAYS, jitter: int = DEFAULT_JITTER,
                   settings: RenderSettings = RenderSettings(), seed: int = 0) -> OccupancyGrid:
    """Bake the occupancy grid of `pair` from its own density (see the module docstring).

    `settings` are the samples the grid will serve, under the pair's sample caps if it has any
    (`nerf_eval.compress.samples`): they set the typical step that turns density into alpha and the
    samples of the calibration rays. Deterministic for a given `seed`."""
    settings = capped_settings(pair, settings)
    check_calibration(calibration, "occupancy")
    if not 0.0 < threshold < 1.0:
        raise CompressorError(f"occupancy: threshold is an alpha in (0, 1), got {threshold}")
    if resolution < 1 or rays < 1 or jitter < 0:
        raise CompressorError("occupancy: resolution and rays must be positive, jitter non-negative")
    calibration, device = calibration.to("cpu"), pair.device  # the grid is baked on the CPU, densities where the networks are
    lower, upper = calibration_bounds(calibration)
    empty = OccupancyGrid(lower, upper, torch.zeros((resolution,) * 3, dtype=torch.bool), stop_transmittance)
    n_samples = settings.n_coarse + (settings.n_fine if pair.fine is not None else 0)
    step = float(((calibration.far - calibration.near) * torch.linalg.norm(calibration.directions, dim=-1)).mean()
                 / max(n_samples - 1, 1))
    sigma_min = -math.log1p(-threshold) / step  # alpha = 1 - exp(-sigma * step) > threshold
    hits = {name: torch.zeros(resolution ** 3, dtype=torch.bool) for name in pair.networks()}

    # 1. The calibration rays' own samples, rendered as the plain renderer does (no grid): the coarse
    #    network's at the coarse samples, the fine network's at all of them.
    sub = calibration_subset(calibration, rays, seed)
    recorders = {name: _OutputRecorder(n) for name, n in pair.networks().items()}
    plain_meta = {k: v for k, v in with_coarse_network(pair).meta.items() if k != OCCUPANCY_KEY}
    recording = ModelPair(recorders["coarse"], recorders.get("fine"), pair.config, plain_meta)
    with torch.inference_mode():
        for s in range(0, len(sub), settings.chunk):
            chunk = sub[s:s + settings.chunk]
            out = render_rays(recording, chunk.to(device), settings)
            depths = {"coarse": stratified_samples(chunk.near, chunk.far, settings.n_coarse, False, settings.lindisp),
                      "fine": out["z_vals"].cpu()}
            for name, rec in recorders.items():
                pts = chunk.origins[:, None, :] + chunk.directions[:, None, :] * depths[name][..., None]
                sigma = torch.cat(rec.outputs)[:, 3].cpu().reshape(pts.shape[:2])  # the chunk's network calls
                rec.outputs.clear()
                flat, inside = empty.cell_index(pts)
                hits[name][flat[(sigma > sigma_min) & inside]] = True

        # 2. `jitter` random points in every cell, seen along random directions, through both networks.
        g = torch.Generator().manual_seed(seed)
        size = (upper - lower) / resolution
        axis = torch.arange(resolution, dtype=torch.float32)
        corners = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        for _ in range(jitter):
            for s in range(0, corners.shape[0], _POINTS_PER_BATCH):
                stop_point()
                c = corners[s:s + _POINTS_PER_BATCH]
                pts = (lower + (c + torch.rand(c.shape, generator=g)) * size)[:, None, :].to(device)
                dirs = F.normalize(torch.randn(c.shape, generator=g), dim=-1).to(device)
                for name, net in pair.networks().items():
                    sigma = query_network(net, pair.config, pts, dirs)[:, 0, 3]
                    hits[name][s:s + c.shape[0]] |= (sigma > sigma_min).cpu()

    # 3. The cells sharing a face with anything found, as a margin.
    cells = {name: h.reshape((resolution,) * 3) for name, h in hits.items()}
    with_margin = {name: face_margin(c) for name, c in cells.items()}
    info = {"resolution": resolution, "margin": "faces", "threshold": threshold, "step": step,
            "sigma_min": sigma_min, "calibration_rays": len(sub), "jitter": jitter,
            "samples": [settings.n_coarse, settings.n_fine], "seed": seed}
    for name in cells:
        info[f"{name}_occupied_before_dilation"] = float(cells[name].float().mean())
        info[f"{name}_occupied"] = float(with_margin[name].float().mean())
    return OccupancyGrid(lower, upper, with_margin["coarse"], stop_transmittance, info, with_margin.get("fine"))


def occupancy_pair(pair: ModelPair, calibration: Rays, resolution: int = DEFAULT_RESOLUTION,
                   threshold: float = DEFAULT_THRESHOLD, stop_transmittance: float = DEFAULT_STOP,
                   rays: int = DEFAULT_RAYS, jitter: int = DEFAULT_JITTER) -> ModelPair:
    """A copy of `pair` (networks copied, so nothing downstream shares them) that renders with a grid
    baked from its own density; a grid already present is replaced."""
    grid = bake_occupancy(pair, calibration, resolution, threshold, stop_transmittance, rays, jitter)
    return pair.copy_with(**{OCCUPANCY_KEY: grid})


PARAMS = (
    Param("res", int, DEFAULT_RESOLUTION, low=1, high=1024, positional=True, help="grid resolution"),
    Param("threshold", float, DEFAULT_THRESHOLD, low=1e-9, high=0.999, help="occupancy threshold (alpha)"),
    Param("stop", float, DEFAULT_STOP, low=0.0, high=0.999, help="early-stop transmittance"),
    Param("rays", int, DEFAULT_RAYS, low=1, high=10 ** 7, help="number of calibration rays baked"),
    Param("jitter", int, DEFAULT_JITTER, low=0, high=64, help="number of jittered points per cell"),
)


def occupancy_compressor(spec: CompressorSpec) -> FunctionCompressor:
    """The compressor for `occupancy[:RES][:res=N][:threshold=T][:stop=E][:rays=N][:jitter=N]`."""
    v = spec.values
    opts: dict[str, Any] = {"resolution": v["res"], "threshold": v["threshold"], "stop_transmittance": v["stop"],
                            "rays": v["rays"], "jitter": v["jitter"]}
    description = (f"occupancy grid {opts['resolution']}^3 (alpha > {opts['threshold']:g}), early stop at "
                   f"transmittance {opts['stop_transmittance']:g}")
    return FunctionCompressor(str(spec), lambda pair, cal: occupancy_pair(pair, cal, **opts),
                              dict(OCCUPANCY_GATES), description)


register("occupancy", occupancy_compressor, params=PARAMS, search="accelerator",
         description="skip empty space and stop rays early: occupancy grids baked from each network's own "
                     "density (networks unchanged; composes, e.g. occupancy+int8-ptq-both); options "
                     ":RES, :threshold=ALPHA, :stop=T, :rays=N, :jitter=N")

__all__ = ["OCCUPANCY_GATES", "OccupancyGrid", "bake_occupancy", "calibration_bounds", "face_margin",
           "occupancy_pair", "occupancy_compressor"]
