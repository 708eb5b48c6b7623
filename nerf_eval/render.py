"""Volume rendering (hierarchical, coarse + fine), and chunked rendering of many rays.

One renderer serves every model: a network only has to map fp32 encoded inputs (N, C) to raw
(N, 4) = (r, g, b, sigma) logits. Everything here is batched over rays and samples (no Python loop over
samples); evaluation is deterministic (no jitter, no density noise), so equal inputs give equal images.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterator, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from nerf_eval.encoding import positional_encoding
from nerf_eval.errors import NerfEvalError
from nerf_eval.interrupt import stop_point
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.sampling import gaussian, sample_pdf, stratified_samples


class StageClock:
    """Wall time per render stage (sampling, encoding, network, compositing), summed over every call.

    Handed to `render_rays`/`render_chunked` by the roofline report to say where a render's time goes;
    without one (the default) rendering pays nothing for it.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def _stage(clock: StageClock | None, name: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if clock is None else clock(name)


# Points per network call on the CPU. A render chunk holds 1024 rays x 192 samples, whose 256-wide fp32
# activations are about 200 MB a layer: glibc serves blocks above its mmap threshold (at most 32 MiB) with
# fresh pages, so a process that had not raised that threshold (`nerf_eval.memory`) paid a page fault and
# a zero-fill per 4 KiB on every call, and timings depended on the process's allocation history.
# Encoding and running the networks on 4096 points at a time keeps every activation at 4 MiB (fp32): the
# same arithmetic, served from the heap and the cache in any process. fp32, 512 rays, 1 thread of a Zen 5
# EPYC (reports/net-chunk): one call per chunk 2.95 s in a plain process and 1.86 s after
# keep_freed_memory; 4096 points per call 1.80 s and 1.78 s (8192: 1.83 and 1.79). On a GPU the whole
# chunk goes in one call, where launches, not page faults, are the cost.
NET_CHUNK = 4096
# A network whose activations are 2 bytes (bf16, fp16) or 1 byte (int8) a value says so in its `meta` dict
# under POINTS_PER_CALL: NARROW_NET_CHUNK points keep its activations at or below fp32's 4 MiB at 4096 and
# halve to quarter the calls (Python and dispatch per call, oneDNN's per-call setup). On an AMX Xeon, 1024
# rays of `object` rendered 1.22-1.25x faster in bf16 and 1.07-1.12x in int8 at 16384 points per call
# than at 4096, and fp32 0.92-0.97x, in a plain process and after keep_freed_memory alike
# (reports/net-chunk/precisions-amx.log), so fp32 keeps NET_CHUNK.
NARROW_NET_CHUNK = 16384
POINTS_PER_CALL = "points_per_call"


def _points_per_call(net_chunk: int | None, device: torch.device, n_points: int,
                     net: nn.Module | None = None) -> int:
    """How many points one network call takes: `net_chunk`, or by default on the CPU what `net.meta` asks
    for (POINTS_PER_CALL) or else `NET_CHUNK`, and all `n_points` elsewhere."""
    if net_chunk is not None:
        return net_chunk
    if device.type != "cpu":
        return max(1, n_points)
    meta = getattr(net, "meta", None)
    return int(meta.get(POINTS_PER_CALL, NET_CHUNK)) if isinstance(meta, dict) else NET_CHUNK


def sample_count_problem(n_coarse: int, n_fine: int) -> str | None:
    """What is wrong with these samples per ray, or None: the coarse pass needs two samples to have an
    interval, and importance sampling a pdf over the interior intervals needs at least one of those."""
    if n_fine < 0 or n_coarse < (3 if n_fine > 0 else 2):
        return "need n_fine >= 0 and n_coarse >= 2 (>= 3 with fine samples)"
    return None


@dataclass(frozen=True)
class RenderSettings:
    """How rays are sampled and composited. Defaults: 64 coarse + 128 fine samples, as in the NeRF paper."""

    n_coarse: int = 64
    n_fine: int = 128
    white_bkgd: bool = True
    lindisp: bool = False
    chunk: int = 1024  # rays per forward pass; bounds memory
    net_chunk: int | None = None  # points per network call; None: see NET_CHUNK

    def __post_init__(self) -> None:
        problem = sample_count_problem(self.n_coarse, self.n_fine)
        if problem is not None:
            raise NerfEvalError(f"{self.n_coarse}+{self.n_fine} samples per ray: {problem}")
        if self.chunk < 1 or (self.net_chunk is not None and self.net_chunk < 1):
            raise ValueError(f"chunk and net_chunk must be positive, got {self.chunk} and {self.net_chunk}")


@dataclass
class Rays:
    """A batch of rays as plain tensors: origins/directions (R, 3), unit view dirs (R, 3), near/far (R,)."""

    origins: torch.Tensor
    directions: torch.Tensor
    viewdirs: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor

    def __len__(self) -> int:
        return self.origins.shape[0]

    def __getitem__(self, idx) -> "Rays":
        return Rays(self.origins[idx], self.directions[idx], self.viewdirs[idx], self.near[idx], self.far[idx])

    def to(self, device: torch.device | str) -> "Rays":
        """The same rays on `device` (no copy when they are there already)."""
        return Rays(*(getattr(self, f).to(device) for f in ("origins", "directions", "viewdirs", "near", "far")))

    @classmethod
    def cat(cls, parts: list["Rays"]) -> "Rays":
        return cls(*(torch.cat([getattr(p, f) for p in parts]) for f in
                     ("origins", "directions", "viewdirs", "near", "far")))

    @classmethod
    def from_od(cls, origins: torch.Tensor, directions: torch.Tensor, near: float, far: float,
                viewdirs: torch.Tensor | None = None) -> "Rays":
        """Flatten (…, 3) origins/directions into a batch with constant near/far bounds."""
        o = origins.reshape(-1, 3).float()
        d = directions.reshape(-1, 3).float()
        v = d if viewdirs is None else viewdirs.reshape(-1, 3).float()
        v = v / torch.linalg.norm(v, dim=-1, keepdim=True)
        n = torch.full((o.shape[0],), float(near))
        f = torch.full((o.shape[0],), float(far))
        return cls(o, d, v, n, f)


def sample_distances(z_vals: torch.Tensor, rays_d: torch.Tensor) -> torch.Tensor:
    """The length (R, S) each sample at depths z_vals (R, S) stands for: the distance to the next sample
    along the ray (unnormalised directions rays_d (R, 3)), and 1e10 for the last (it absorbs the rest)."""
    dists = z_vals[..., 1:] - z_vals[..., :-1]
    dists = torch.cat([dists, torch.full_like(dists[..., :1], 1e10)], -1)
    return dists * torch.linalg.norm(rays_d[..., None, :], dim=-1)


def volume_render(raw: torch.Tensor, z_vals: torch.Tensor, rays_d: torch.Tensor, white_bkgd: bool = True,
                  raw_noise_std: float = 0.0, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Composite raw (R, S, 4) outputs at depths z_vals (R, S) into rgb, depth, acc and weights."""
    dists = sample_distances(z_vals, rays_d)
    rgb = torch.sigmoid(raw[..., :3])
    sigma = raw[..., 3]
    if raw_noise_std > 0.0:
        sigma = sigma + gaussian(sigma.shape, generator, sigma.dtype, sigma.device) * raw_noise_std
    alpha = 1.0 - torch.exp(-torch.relu(sigma) * dists)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha + 1e-10], -1), -1)[..., :-1]
    weights = alpha * trans
    rgb_map = torch.sum(weights[..., None] * rgb, -2)
    depth_map = torch.sum(weights * z_vals, -1)
    acc_map = torch.sum(weights, -1)
    if white_bkgd:
        rgb_map = rgb_map + (1.0 - acc_map[..., None])
    return {"rgb": rgb_map, "depth": depth_map, "acc": acc_map, "weights": weights}


def encoded_inputs(config: NeRFConfig, flat_pts: torch.Tensor, views: torch.Tensor | None,
                   ray_of: int | torch.Tensor) -> torch.Tensor:
    """The network input (N, C) of points (N, 3): their encoding, then their ray's encoded view
    direction from `views` (R, Cv) (None: no view input). `ray_of` says which ray each point is on: an
    int S when the points are R rays x S samples in order, or an index tensor (N,).

    Both parts are written into one buffer: expanding the view encoding per sample and concatenating
    copied the whole input twice more."""
    width = config.input_ch + (views.shape[-1] if views is not None else 0)
    x = torch.empty(flat_pts.shape[0], width, dtype=torch.float32, device=flat_pts.device)
    positional_encoding(flat_pts, config.multires, out=x[:, :config.input_ch])
    if views is not None:
        tail = x[:, config.input_ch:]
        if isinstance(ray_of, int):
            tail.unflatten(0, (-1, ray_of)).copy_(views[:, None, :])
        else:
            tail.copy_(views[ray_of])
    return x


def _encode_and_query(net: nn.Module, config: NeRFConfig, flat_pts: torch.Tensor, views: torch.Tensor | None,
                      ray_of: int | torch.Tensor, autocast_dtype: torch.dtype | None,
                      clock: StageClock | None) -> torch.Tensor:
    """One network call: fp32 raw (N, 4) of `net` at points (N, 3), encoded in fp32 (`encoded_inputs`,
    which reads `views` and `ray_of`), then the MLP under `autocast_dtype`."""
    with _stage(clock, "encoding"):
        x = encoded_inputs(config, flat_pts, views, ray_of)
    autocast = (torch.autocast(x.device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else contextlib.nullcontext())
    with _stage(clock, "network"), autocast:
        return net(x).float()


def _cat_raw(raws: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    return torch.cat(raws) if raws else torch.zeros(0, 4, device=device)


def query_network(net: nn.Module, config: NeRFConfig, pts: torch.Tensor, viewdirs: torch.Tensor,
                  autocast_dtype: torch.dtype | None = None, clock: StageClock | None = None,
                  net_chunk: int | None = None) -> torch.Tensor:
    """Run `net` on points (R, S, 3) seen along unit view dirs (R, 3); returns fp32 raw (R, S, 4).

    Whole rays of about `net_chunk` points at a time are encoded and sent through `net` (default: see
    `NET_CHUNK`). The encoding stays in fp32; `autocast_dtype` (e.g. bf16 for training) applies to the MLP
    only.
    """
    n_rays, n_samples = pts.shape[:2]
    with _stage(clock, "encoding"):
        views = positional_encoding(viewdirs, config.multires_views) if config.use_viewdirs else None
    step = max(1, _points_per_call(net_chunk, pts.device, n_rays * n_samples, net) // max(1, n_samples))
    raws = [_encode_and_query(net, config, pts[s:s + step].reshape(-1, 3),
                              None if views is None else views[s:s + step], n_samples, autocast_dtype, clock)
            for s in range(0, n_rays, step)]
    return _cat_raw(raws, pts.device).reshape(n_rays, n_samples, -1)


SAMPLES_KEY = "samples"  # pair.meta entry holding a SampleCaps (nerf_eval.compress.samples)


@dataclass(frozen=True)
class SampleCaps:
    """At most `n_coarse` coarse and `n_fine` fine samples per ray (None: as the render settings say).

    A pair carrying caps in `pair.meta["samples"]` renders with the smaller of each cap and the count its
    `RenderSettings` ask for (`capped_settings`), so an explicitly smaller request still holds."""

    n_coarse: int | None = None
    n_fine: int | None = None

    def __post_init__(self) -> None:
        for name, least in (("n_coarse", 3), ("n_fine", 0)):
            n = getattr(self, name)
            if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < least):
                raise ValueError(f"sample cap {name} must be None or an int of at least {least}, got {n!r}")

    def tightened(self, other: "SampleCaps | None") -> "SampleCaps":
        """The caps that hold both `self` and `other`: the smaller of each count (None: no cap)."""
        if other is None:
            return self
        return SampleCaps(*(a if b is None else b if a is None else min(a, b)
                            for a, b in ((self.n_coarse, other.n_coarse), (self.n_fine, other.n_fine))))

    def apply(self, settings: RenderSettings) -> RenderSettings:
        coarse = settings.n_coarse if self.n_coarse is None else min(settings.n_coarse, self.n_coarse)
        fine = settings.n_fine if self.n_fine is None else min(settings.n_fine, self.n_fine)
        if (coarse, fine) == (settings.n_coarse, settings.n_fine):
            return settings
        return replace(settings, n_coarse=coarse, n_fine=fine)

    def to_state(self) -> dict[str, Any]:
        return {"n_coarse": self.n_coarse, "n_fine": self.n_fine}

    @classmethod
    def from_state(cls, state: Any) -> "SampleCaps":
        """The caps `to_state` wrote; ValueError naming what is wrong with anything else."""
        if not isinstance(state, dict) or set(state) - {"n_coarse", "n_fine"}:
            raise ValueError("sample caps are not a dict of n_coarse and n_fine")
        return cls(state.get("n_coarse"), state.get("n_fine"))


def capped_settings(pair: ModelPair, settings: RenderSettings) -> RenderSettings:
    """The settings `pair` renders with: `settings` under the pair's `SampleCaps`, if it carries any."""
    caps = pair.meta.get(SAMPLES_KEY) if pair.meta else None
    return settings if caps is None else caps.apply(settings)


OCCUPANCY_KEY = "occupancy"  # pair.meta entry holding a SampleFilter (nerf_eval.compress.occupancy.OccupancyGrid)
MARCH_SAMPLES = 16  # occupied fine samples per ray queried per step of early-stopping marching, after the first


class SampleFilter(Protocol):
    """What `render_rays` needs from an accelerator in `pair.meta[OCCUPANCY_KEY]`.

    `occupied(points (..., 3), network) -> (...) bool`: False only where the density of `network`
    ("coarse" or "fine", the pass asking) is known to be negligible (those samples are not sent to it and
    count as empty). `stop_transmittance`: the fine pass marches each ray front to back and skips the rest
    of it once its transmittance is below this (what it skips could change the pixel by about that much),
    its first step reaching where the coarse pass's transmittance fell below it; 0 disables early stopping."""

    stop_transmittance: float

    def occupied(self, points: torch.Tensor, network: str) -> torch.Tensor: ...


def sample_filter(pair: ModelPair) -> SampleFilter | None:
    """The pair's accelerator (an occupancy grid), or None for plain rendering."""
    return pair.meta.get(OCCUPANCY_KEY) if pair.meta else None


PROPOSAL_KEY = "coarse_grid"  # pair.meta entry holding a DensityProposal (nerf_eval.compress.coarse_grid.DensityGrid)


class DensityProposal(Protocol):
    """What `render_rays` needs from a baked coarse pass in `pair.meta[PROPOSAL_KEY]`.

    `density(points (..., 3)) -> (sigma (...), inside (...))`: the coarse network's density, read from a
    table where `inside` is True; the coarse pass uses it there instead of running the network (it only
    places the fine samples), and runs the coarse network everywhere else."""

    def density(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def coarse_proposal(pair: ModelPair) -> DensityProposal | None:
    """The pair's baked coarse pass, or None when the coarse network places the fine samples."""
    return pair.meta.get(PROPOSAL_KEY) if pair.meta else None


def with_coarse_network(pair: ModelPair) -> ModelPair:
    """`pair` (the same networks, not copies) rendering its coarse pass with the coarse network even where
    a baked proposal would answer: what calibration renders, so the coarse network is calibrated on the
    points it stands for rather than on the few outside the proposal's box."""
    if coarse_proposal(pair) is None:
        return pair
    return ModelPair(pair.coarse, pair.fine, pair.config, {k: v for k, v in pair.meta.items() if k != PROPOSAL_KEY})


def _query_kept(net: nn.Module, config: NeRFConfig, flat_pts: torch.Tensor, views: torch.Tensor | None,
                idx: torch.Tensor, n_samples: int, autocast_dtype: torch.dtype | None,
                clock: StageClock | None, net_chunk: int | None = None) -> torch.Tensor:
    """Raw (K, 4) of `net` at the flat sample indices `idx` of points (R * S, 3), `net_chunk` points per
    call (default: see `NET_CHUNK`); `views` are the encoded view dirs per ray (R, C) or None."""
    step = _points_per_call(net_chunk, flat_pts.device, idx.numel(), net)
    raws = [_encode_and_query(net, config, flat_pts[part], views, torch.div(part, n_samples, rounding_mode="floor"),
                              autocast_dtype, clock)
            for part in idx.split(step)]
    return _cat_raw(raws, flat_pts.device)


def query_occupied(net: nn.Module, config: NeRFConfig, pts: torch.Tensor, viewdirs: torch.Tensor,
                   keep: torch.Tensor, autocast_dtype: torch.dtype | None = None,
                   clock: StageClock | None = None, dists: torch.Tensor | None = None,
                   stop_transmittance: float = 0.0, net_chunk: int | None = None,
                   first_step: torch.Tensor | None = None) -> torch.Tensor:
    """`query_network` for the points (R, S, 3) where `keep` (R, S) is True; the others get raw zeros
    (zero density: they add nothing to the composite). Returns fp32 raw (R, S, 4).

    Kept points are gathered (encoding stage), run through `net` (network stage) and scattered back
    (compositing stage), so a network's cost follows the kept points. With `stop_transmittance` > 0
    and the samples' `dists` (R, S) (as `volume_render` weighs them), rays are marched front to back and
    a ray's remaining samples are skipped once its transmittance falls below `stop_transmittance`: the
    first step queries `first_step` (R,) kept samples of each ray (none if not given), every later step
    `MARCH_SAMPLES`. Every step is a network call, so a first step that reaches about where each ray
    stops saves calls without querying samples past the stop."""
    n_rays, n_samples = pts.shape[:2]
    flat_pts = pts.reshape(-1, 3)
    with _stage(clock, "encoding"):
        views = positional_encoding(viewdirs, config.multires_views) if config.use_viewdirs else None
    raw = torch.zeros(n_rays * n_samples, 4, dtype=torch.float32, device=pts.device)
    if stop_transmittance <= 0.0 or dists is None:
        with _stage(clock, "sampling"):
            idx = keep.reshape(-1).nonzero().squeeze(1)
        if idx.numel():
            out = _query_kept(net, config, flat_pts, views, idx, n_samples, autocast_dtype, clock, net_chunk)
            with _stage(clock, "compositing"):
                raw = raw.index_copy(0, idx, out)
        return raw.reshape(n_rays, n_samples, 4)
    with _stage(clock, "sampling"):
        kept = keep.sum(-1)
        first = torch.zeros_like(kept) if first_step is None else torch.minimum(first_step.to(kept), kept)
        rank = torch.cumsum(keep, -1) - 1 - first[:, None]  # order of each kept sample after the first step
        steps = 1 + (-(-int((kept - first).max()) // MARCH_SAMPLES) if n_rays else 0)
        log_t = torch.zeros(n_rays, dtype=torch.float32, device=pts.device)
        flat_dists = dists.reshape(-1)
        log_stop = float(torch.log(torch.tensor(stop_transmittance)))
    for step in range(steps):
        with _stage(clock, "sampling"):
            lo = (step - 1) * MARCH_SAMPLES if step else -n_samples
            hi = step * MARCH_SAMPLES
            sel = keep & (rank >= lo) & (rank < hi) & (log_t > log_stop)[:, None]
            idx = sel.reshape(-1).nonzero().squeeze(1)
        if not idx.numel():
            if step:
                break  # every ray has stopped or run out of kept samples
            continue
        out = _query_kept(net, config, flat_pts, views, idx, n_samples, autocast_dtype, clock, net_chunk)
        with _stage(clock, "compositing"):
            raw = raw.index_copy(0, idx, out)
            tau = torch.relu(out[:, 3].detach()) * flat_dists[idx]
            log_t = log_t.index_add(0, torch.div(idx, n_samples, rounding_mode="floor"), -tau)
    return raw.reshape(n_rays, n_samples, 4)


def predicted_stop(coarse_weights: torch.Tensor, z_coarse: torch.Tensor, z_all: torch.Tensor, keep: torch.Tensor,
                   stop_transmittance: float) -> torch.Tensor:
    """(R,) the kept fine-pass samples (`keep` over depths `z_all` (R, S)) of each ray up to where the coarse
    pass's transmittance (from its `coarse_weights` at depths `z_coarse` (R, N)) first falls below
    `stop_transmittance`, all of them where it never does: the first marching step of `query_occupied`."""
    t_after = 1.0 - torch.cumsum(coarse_weights, -1)  # transmittance behind each coarse sample
    stopped = t_after < stop_transmittance
    z_stop = torch.where(stopped.any(-1), z_coarse.gather(-1, stopped.float().argmax(-1, keepdim=True))[:, 0],
                         torch.full_like(z_coarse[:, 0], float("inf")))
    return (keep & (z_all <= z_stop[:, None])).sum(-1)


def _proposed_coarse(pair: ModelPair, proposal: DensityProposal, pts: torch.Tensor, viewdirs: torch.Tensor,
                     keep: torch.Tensor | None, autocast_dtype: torch.dtype | None, clock: StageClock | None,
                     net_chunk: int | None) -> torch.Tensor:
    """Coarse raw (R, S, 4) with the proposal's density inside its box (zero colour logits: the coarse
    colour is not rendered from a density table) and the coarse network outside it; samples that an
    occupancy `keep` mask (R, S) rules out get zero density either way."""
    with _stage(clock, "sampling"):
        sigma, inside = proposal.density(pts)
        outside = ~inside if keep is None else keep & ~inside
    if bool(outside.any()):
        raw = query_occupied(pair.coarse, pair.config, pts, viewdirs, outside, autocast_dtype, clock,
                             net_chunk=net_chunk)
    else:
        raw = torch.zeros(*pts.shape[:2], 4, dtype=torch.float32, device=pts.device)
    with _stage(clock, "compositing"):
        if keep is not None:
            sigma = torch.where(keep, sigma, 0.0)
        raw[..., 3] = torch.where(inside, sigma.float(), raw[..., 3])
    return raw


def render_rays(pair: ModelPair, rays: Rays, settings: RenderSettings = RenderSettings(),
                perturb: bool = False, raw_noise_std: float = 0.0, generator: torch.Generator | None = None,
                autocast_dtype: torch.dtype | None = None, clock: StageClock | None = None) -> dict[str, torch.Tensor]:
    """Hierarchical rendering of one batch of rays (no chunking; see `render_chunked`).

    Returns the fine pass as rgb/depth/acc/weights/z_vals and the coarse pass as rgb0/depth0/acc0.
    `clock` (optional) sums the time of each stage. With an accelerator in `pair.meta["occupancy"]`
    (see `SampleFilter`), each network runs only on the samples in occupied space, and the fine pass
    stops each ray once its transmittance is negligible; without one, every sample is queried.
    Sample caps in `pair.meta["samples"]` (`SampleCaps`) lower the sample counts of `settings`. With a
    baked coarse pass in `pair.meta["coarse_grid"]` (`DensityProposal`), the coarse density inside its box
    is read from it instead of the coarse network; rgb0 is then not a colour (the table holds density only),
    while depth0 and acc0 are the proposal's.
    Every batch begins with a stop point (`nerf_eval.interrupt`), where a requested Ctrl-C takes effect.
    """
    stop_point()
    settings = capped_settings(pair, settings)
    o, d = rays.origins, rays.directions
    grid = sample_filter(pair)
    with _stage(clock, "sampling"):
        z = stratified_samples(rays.near, rays.far, settings.n_coarse, perturb, settings.lindisp, generator)
        pts = o[:, None, :] + d[:, None, :] * z[..., None]
        keep = None if grid is None else grid.occupied(pts, "coarse")
    proposal = coarse_proposal(pair)
    if proposal is not None:
        raw = _proposed_coarse(pair, proposal, pts, rays.viewdirs, keep, autocast_dtype, clock, settings.net_chunk)
    elif keep is None:
        raw = query_network(pair.coarse, pair.config, pts, rays.viewdirs, autocast_dtype, clock, settings.net_chunk)
    else:
        raw = query_occupied(pair.coarse, pair.config, pts, rays.viewdirs, keep, autocast_dtype, clock,
                             net_chunk=settings.net_chunk)
    with _stage(clock, "compositing"):
        coarse = volume_render(raw, z, d, settings.white_bkgd, raw_noise_std, generator)
    if pair.fine is None or settings.n_fine <= 0:
        out = dict(coarse)
        out["z_vals"] = z
        out.update(rgb0=coarse["rgb"], depth0=coarse["depth"], acc0=coarse["acc"])
        return out
    with _stage(clock, "sampling"):
        mids = 0.5 * (z[:, 1:] + z[:, :-1])
        z_fine = sample_pdf(mids, coarse["weights"][:, 1:-1].detach(), settings.n_fine,
                            deterministic=not perturb, generator=generator)
        z_all = torch.sort(torch.cat([z, z_fine.detach()], -1), -1).values
        pts = o[:, None, :] + d[:, None, :] * z_all[..., None]
        keep = None if grid is None else grid.occupied(pts, "fine")
    if keep is None:
        raw = query_network(pair.fine, pair.config, pts, rays.viewdirs, autocast_dtype, clock, settings.net_chunk)
    else:
        with _stage(clock, "sampling"):
            dists = sample_distances(z_all, d)
            first = (predicted_stop(coarse["weights"], z, z_all, keep, grid.stop_transmittance)
                     if grid.stop_transmittance > 0 else None)
        raw = query_occupied(pair.fine, pair.config, pts, rays.viewdirs, keep, autocast_dtype, clock, dists,
                             grid.stop_transmittance, settings.net_chunk, first)
    with _stage(clock, "compositing"):
        fine = volume_render(raw, z_all, d, settings.white_bkgd, raw_noise_std, generator)
    fine["z_vals"] = z_all
    fine.update(rgb0=coarse["rgb"], depth0=coarse["depth"], acc0=coarse["acc"])
    return fine


def render_chunked(pair: ModelPair, rays: Rays, settings: RenderSettings = RenderSettings(),
                   progress: bool = False, desc: str = "render", clock: StageClock | None = None) -> dict[str, torch.Tensor]:
    """Deterministic evaluation render of any number of rays in chunks (memory bounded by the chunk).

    The networks' device does the work (`ModelPair.device`); rays move there a chunk at a time and the
    results come back to the CPU. Returns rgb (R, 3), depth (R,), acc (R,) of the fine pass.
    """
    device = pair.device
    outs: dict[str, list[torch.Tensor]] = {"rgb": [], "depth": [], "acc": []}
    starts = range(0, len(rays), settings.chunk)
    with torch.inference_mode():
        for s in tqdm(starts, desc=desc, disable=not progress, leave=False, unit="chunk"):
            r = render_rays(pair, rays[s:s + settings.chunk].to(device), settings, clock=clock)
            for k in outs:
                outs[k].append(r[k].cpu())
    return {k: torch.cat(v) if v else torch.empty(0) for k, v in outs.items()}
