"""Bake the coarse pass: the coarse network's density as a table, so the coarse pass runs no network.

In hierarchical NeRF the coarse network's only job at render time is to place the fine samples: its
density along each ray becomes the weights that importance sampling draws from (its colour is never
shown). `coarse-grid` tabulates that density once, at the vertices of a `RES`^3 grid over the box of the
calibration rays (in NDC for forward-facing scenes), and puts the `DensityGrid` into
`pair.meta["coarse_grid"]`, which `render_rays` reads (`nerf_eval.render.DensityProposal`): inside the box
the coarse pass interpolates the table (trilinear) instead of running the coarse network; outside it
the network still runs, so a camera off the calibration box loses nothing. The fine network, and the
image, are unchanged but for where the table's interpolation moves a fine sample.

The table holds the network's raw density output, before its ReLU, and the ReLU is applied after
interpolating ("post-activation", as DVGO found for density grids): where the raw density crosses zero
inside a cell, the surface stays where linear interpolation puts the crossing instead of being smeared
as a ramp across the whole cell, which is what interpolating the non-negative density would do. On
object's and forward's val views it lowered the PSNR drop at 10 of the 12 sample budgets tried (by up to
0.06 dB; 0.03 and 0.02 dB worse at the other two), and at 48 fine and 32 coarse samples all three of
the drops the gates check on both scenes; on flower it changed nothing beyond 0.002 dB
(`reports/coarse-grid/val-budget.log` against `val-budget-density-table.log`).

NeRF's density does not depend on the view direction (the architecture adds the direction after the
density head), so one value per vertex is the network's density. The default 96^3 was chosen on val
views in the composition it serves, `samples+occupancy+coarse-grid` (`samples:32:coarse=32+...` on flower;
`reports/occupancy-margin/val_grid_res.py`, `*-val-grid-res.log`): the smallest of 64, 80, 96, 112 and 128
inside the gates (0.1 dB mean, 0.2 dB worst view) on all three scenes' val views, +0.036 / −0.017 / +0.048 dB
on object / forward / flower (worst view +0.198 / +0.053 / +0.082) where 64^3 lost +0.092 / +0.124 / +0.059
(worst +0.240 / +0.404 / +0.097), at about the same speed (flower's val view 4.83x against 4.95x; 80, 112
and 128 were tried on object and forward, where 80 failed object's worst view). The drop does not fall
steadily with resolution (forward: +0.036 at 80, +0.056 at 112, +0.074 at 128): what moves it is where a few
rays' fine samples land. An earlier choice of 64^3 against the coarse network alone is
`reports/coarse-grid/val-resolution.log`. What it buys is the coarse network's share of the evaluations: 64
of 256 per ray at the paper's 64+128 samples, a third with `samples:32:coarse=32`.

The table is stored as fp16 with the saved model (`to_state`/`from_state`: plain tensors and values,
loadable with `torch.load(..., weights_only=True)`), 2 bytes per vertex: 549 KB at 64^3, 1.8 MB at 96^3.
It is a snapshot of the coarse network: put `coarse-grid` after stages that change it (pruning,
fine-tuning); fine-tuning a pair with a baked coarse pass is refused. It composes with the other
accelerators (`samples:32:coarse=32+occupancy+coarse-grid`): empty cells of an occupancy grid still
count as empty, and sample caps set how many table lookups a ray makes.

Names: `coarse-grid[:RES]`, e.g. `coarse-grid:64`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from nerf_eval.compress.base import FunctionCompressor, check_calibration, register
from nerf_eval.compress.occupancy import calibration_bounds, checked_box
from nerf_eval.compress.params import CompressorSpec, Param
from nerf_eval.errors import CompressorError
from nerf_eval.interrupt import stop_point
from nerf_eval.model import ModelPair
from nerf_eval.render import PROPOSAL_KEY, Rays, query_network

DEFAULT_RESOLUTION = 96
COARSE_GRID_GATES = {"psnr_drop": 0.1, "worst_psnr_drop": 0.2, "ssim_drop": 0.002}
STATE_FORMAT = "coarse-density-grid-v2"
_DENSITY_FORMAT = "coarse-density-grid-v1"  # non-negative densities; the ReLU after interpolation keeps them
_FP16_MAX = 65504.0
_POINTS_PER_BATCH = 65536


@dataclass(eq=False)
class DensityGrid:
    """Raw density (the network's density output before its ReLU) at the vertices of a grid over the box
    [lower, upper] (3,): `values[i, j, k]` is the value at lower + (i, j, k) / (shape - 1) * (upper - lower).
    `info` records how it was baked (plain values only, saved with the grid)."""

    lower: torch.Tensor
    upper: torch.Tensor
    values: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    _volumes: dict[torch.device, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.lower, self.upper = checked_box(self.lower, self.upper, "density grid")
        if (not isinstance(self.values, torch.Tensor) or not self.values.is_floating_point()
                or self.values.dim() != 3 or min(self.values.shape) < 2):
            raise ValueError("density grid values must be a 3-D float tensor with at least 2 vertices a side")
        if not torch.isfinite(self.values).all() or self.values.abs().max() > _FP16_MAX:
            raise ValueError("density grid values must be finite and within fp16's range")
        self.values = self.values.to(torch.float16)

    @property
    def resolution(self) -> tuple[int, int, int]:
        """Cells per side (one less than the vertices)."""
        return tuple(int(n) - 1 for n in self.values.shape)  # type: ignore[return-value]

    def _volume(self, device: torch.device) -> torch.Tensor:
        """The values as grid_sample's fp32 (1, 1, Z, Y, X) volume on `device`, made once per device."""
        if device not in self._volumes:
            self._volumes[device] = self.values.float().permute(2, 1, 0).contiguous()[None, None].to(device)
        return self._volumes[device]

    def density(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For points (..., 3): the density (...), the ReLU of the trilinearly interpolated raw values, and
        whether each point is in the box (outside it, and at NaN points, the density means nothing)."""
        p = points.reshape(-1, 3).float()
        lower, upper = self.lower.to(p.device), self.upper.to(p.device)
        u = (p - lower) / (upper - lower) * 2.0 - 1.0
        inside = ((u >= -1.0) & (u <= 1.0)).all(-1)
        u = torch.nan_to_num(u, nan=0.0, posinf=0.0, neginf=0.0)
        sigma = F.grid_sample(self._volume(p.device), u.reshape(1, -1, 1, 1, 3), mode="bilinear",
                              padding_mode="border", align_corners=True).reshape(-1).relu()
        return sigma.reshape(points.shape[:-1]), inside.reshape(points.shape[:-1])

    def to_state(self) -> dict[str, Any]:
        """Plain tensors and values (fp16 raw densities) for a weights-only torch file."""
        return {"format": STATE_FORMAT, "lower": self.lower.clone(), "upper": self.upper.clone(),
                "values": self.values.clone(), "info": dict(self.info)}

    @classmethod
    def from_state(cls, state: Any) -> "DensityGrid":
        """The grid `to_state` wrote, or one of non-negative densities (`coarse-density-grid-v1`, read the
        same way: its ReLU changes nothing); ValueError naming what is wrong with anything else."""
        if not isinstance(state, dict) or state.get("format") not in (STATE_FORMAT, _DENSITY_FORMAT):
            raise ValueError(f"not a density grid of format {STATE_FORMAT!r}")
        for k in ("lower", "upper", "values"):
            if not isinstance(state.get(k), torch.Tensor):
                raise ValueError(f"density grid {k} is not a tensor")
        values = state["values"]
        if values.dim() != 3 or max(values.shape) > 4097:
            raise ValueError(f"bad density grid shape {tuple(values.shape)}")
        if state["format"] == _DENSITY_FORMAT and values.is_floating_point() and (values < 0).any():
            raise ValueError(f"density grid of format {_DENSITY_FORMAT!r} has negative densities")
        info = state.get("info", {})
        return cls(state["lower"], state["upper"], values, dict(info) if isinstance(info, dict) else {})


def bake_coarse_grid(pair: ModelPair, calibration: Rays, resolution: int = DEFAULT_RESOLUTION) -> DensityGrid:
    """The coarse network's raw density at the (resolution + 1)^3 vertices of a grid over the calibration
    rays' box (see the module docstring). Deterministic; runs where the networks are."""
    check_calibration(calibration, "coarse-grid")
    if not isinstance(resolution, int) or resolution < 1:
        raise CompressorError(f"coarse-grid: resolution must be a positive integer, got {resolution!r}")
    lower, upper = calibration_bounds(calibration.to("cpu"))
    axes = [torch.linspace(float(lower[i]), float(upper[i]), resolution + 1) for i in range(3)]
    vertices = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 1, 3)
    view = torch.tensor([[0.0, 0.0, 1.0]])  # density does not depend on it
    device = pair.device
    sigma = []
    with torch.inference_mode():
        for s in range(0, vertices.shape[0], _POINTS_PER_BATCH):
            stop_point()
            pts = vertices[s:s + _POINTS_PER_BATCH].to(device)
            raw = query_network(pair.coarse, pair.config, pts, view.to(device).expand(pts.shape[0], 3))
            sigma.append(raw[:, 0, 3].clamp(-_FP16_MAX, _FP16_MAX).cpu())
    values = torch.cat(sigma).reshape((resolution + 1,) * 3)
    info = {"resolution": resolution, "calibration_rays": len(calibration), "network": "coarse",
            "max_density": max(float(values.max()), 0.0)}
    return DensityGrid(lower, upper, values, info)


def coarse_grid_pair(pair: ModelPair, calibration: Rays, resolution: int = DEFAULT_RESOLUTION) -> ModelPair:
    """A copy of `pair` (networks copied) whose coarse pass reads a table baked from its coarse network;
    a table already present is replaced. A pair without a fine network is refused: its coarse pass is the
    image, not a proposal."""
    if pair.fine is None:
        raise CompressorError("coarse-grid: the pair has no fine network, so its coarse pass renders the image "
                              "and cannot be replaced by a density table")
    return pair.copy_with(**{PROPOSAL_KEY: bake_coarse_grid(pair, calibration, resolution)})


PARAMS = (
    Param("res", int, DEFAULT_RESOLUTION, low=1, high=1024, positional=True, help="grid resolution (cells a side)"),
)


def coarse_grid_compressor(spec: CompressorSpec) -> FunctionCompressor:
    """The compressor for `coarse-grid[:RES]`."""
    resolution = spec.values["res"]
    return FunctionCompressor(str(spec), lambda pair, cal: coarse_grid_pair(pair, cal, resolution),
                              dict(COARSE_GRID_GATES),
                              f"coarse pass read from a {resolution}^3 table of the coarse network's density")


register("coarse-grid", coarse_grid_compressor, params=PARAMS, search="accelerator",
         description="bake the coarse pass: the coarse network's density as a grid that places the fine "
                     "samples without running the coarse network (networks unchanged; composes, e.g. "
                     "samples+occupancy+coarse-grid; bake it after pruning); option :RES")

__all__ = ["COARSE_GRID_GATES", "DEFAULT_RESOLUTION", "DensityGrid", "bake_coarse_grid", "coarse_grid_compressor",
           "coarse_grid_pair"]
