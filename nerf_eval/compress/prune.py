"""Structured pruning of the NeRF MLP: score hidden units, remove the weakest, slice the layers.

The result is a smaller dense `NeRF` of the same class (per-layer widths in `NeRFConfig.hidden_widths`),
so it saves, loads and renders like any float model and runs faster with no sparse kernels.

Which layers depend on which is data (`dependency_graph`): every prunable layer ("producer") lists the
layers that read its units ("consumers") and the column offset at which they do. `pts_linears.i` feeds
`pts_linears.i+1`; after a skip layer the consumer reads `cat([input_pts, h])`, so h sits at offset
`input_ch`; the last hidden layer feeds `alpha_linear` and `feature_linear` (or `output_linear`), and
`views_linears.0` feeds `rgb_linear`. Slicing (`prune_network`) is generic over that graph, in the spirit
of Torch-Pruning's DepGraph; we do not use that library because its 1.6.1 tracer cuts the wrong columns
of the layer after a skip (it misses the `input_ch` offset of h in `cat([input_pts, h])` when
`input_pts` is a split of the network input), and the graph here follows from `NeRFConfig` alone.
`feature_linear` is not pruned: its output has no ReLU, so a small mean |a| does not mean a unit is idle
(it shifts `views_linears.0` linearly), and it is a small share of the compute.

Removing a unit drops its contribution to its consumers. Optional repair (`repair=`): `mean` replaces
each removed unit by its mean calibration activation, folded into the consumers' biases; `lsq` refits
the consumers' kept columns and bias by least squares on the calibration activations (removed units
regressed on the kept ones), as layer-wise reconstruction in channel-pruning work does.

Scoring rules (higher = more important): activation statistics of post-ReLU outputs on calibration rays
(`mean` |a|, `variance`, `entropy` of the activation histogram), the L2 norm of a unit's incoming weights
(`weight-in`, its row) or of its outgoing weights (`weight-out`, its columns in every consumer), and
seeded `random` scores; and `obs`, the greedy Optimal Brain Surgeon order from activation second moments
and outgoing weights (`obs_scores`), which assumes the least-squares repair above.
Registered names: `prune-activation:R` (mean, plain removal: the reference report's method),
`prune-activation-var:R`, `prune-activation-entropy:R`, `prune-activation-obs:R` (OBS order + `lsq`
repair), `prune-weight-in:R`, `prune-weight-out:R`, `prune-random:R`, where R in
[0, 1) is the share of units removed; options follow as `:global` (one ranking over all layers),
`:round=N` (kept widths are multiples of N, default 16; 1 = exact), `:views` (prune `views_linears.0`
too), `:repair=none|mean|lsq`, `:seed=N` (random rule), `:coarse=R` / `:fine=R` (a ratio for one network),
e.g. `prune-activation:0.3:global:round=1` or `prune-activation-obs:0.3:coarse=0.5`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import torch
from torch import nn

from nerf_eval.compress.base import check_calibration, register
from nerf_eval.compress.memo import CalibrationCache
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair, NeRF, NeRFConfig
from nerf_eval.render import Rays, RenderSettings, render_rays

ACTIVATION_RULES = ("mean", "variance", "entropy", "obs")
WEIGHT_RULES = ("weight-in", "weight-out", "random")
RULES = ACTIVATION_RULES + WEIGHT_RULES
SCOPES = ("layer", "global")
REPAIRS = ("none", "mean", "lsq")
ENTROPY_BINS = 32


@dataclass(frozen=True)
class Consumer:
    """A layer that reads a producer's units as its input columns `offset .. offset + width`."""

    layer: str
    offset: int


@dataclass(frozen=True)
class Producer:
    """A prunable layer (its output units are rows of `layer`) and the layers that read those units."""

    layer: str
    width: int
    consumers: tuple[Consumer, ...]


def dependency_graph(config: NeRFConfig, views: bool = False) -> tuple[Producer, ...]:
    """Prunable layers of a NeRF of `config` and who consumes their units, at which column offset.

    With `views`, the view branch's hidden layer `views_linears.0` is prunable too."""
    heads = ("alpha_linear", "feature_linear") if config.use_viewdirs else ("output_linear",)
    out = []
    for i, w in enumerate(config.widths):
        offset = config.input_ch if i in config.skips else 0
        readers = (f"pts_linears.{i + 1}",) if i + 1 < config.depth else heads
        out.append(Producer(f"pts_linears.{i}", w, tuple(Consumer(r, offset) for r in readers)))
    if views and config.use_viewdirs:
        out.append(Producer("views_linears.0", config.view_width, (Consumer("rgb_linear", 0),)))
    return tuple(out)


def check_nerf(net: nn.Module, where: str) -> NeRF:
    """`net` itself if it is a float NeRF MLP whose layers match its config, else a CompressorError."""
    if not isinstance(net, NeRF):
        raise CompressorError(f"{where}: {type(net).__name__} is not a NeRF MLP (prune before quantizing or casting)")
    for i, layer in enumerate(net.pts_linears):
        if not isinstance(layer, nn.Linear) or layer.out_features != net.config.widths[i] \
                or layer.in_features != net.config.layer_in_features(i):
            raise CompressorError(f"{where}: pts_linears.{i} does not match its NeRF config {net.config}")
    if len(net.pts_linears) != net.config.depth:
        raise CompressorError(f"{where}: has {len(net.pts_linears)} pts_linears, config says {net.config.depth}")
    for name, p in net.named_parameters():
        if p.dtype != torch.float32:
            raise CompressorError(f"{where}: {name} is {p.dtype}, not float32 (prune before casting)")
    return net


# ---------------------------------------------------------------- activation statistics on calibration rays

class UnitStats:
    """Running per-unit statistics of one layer's post-ReLU activations (sums in float64)."""

    def __init__(self, width: int, gram: bool = False) -> None:
        self.width = width
        self.count = 0
        self.total = torch.zeros(width, dtype=torch.float64)
        self.total_sq = torch.zeros(width, dtype=torch.float64)
        self.peak = torch.zeros(width)
        self.gram = torch.zeros(width, width, dtype=torch.float64) if gram else None  # sum of a a^T
        self.bins_top: torch.Tensor | None = None  # per-unit upper histogram edge (second pass only)
        self.histogram: torch.Tensor | None = None  # (width, ENTROPY_BINS + 1); bin 0 holds exact zeros

    def add(self, a: torch.Tensor) -> None:
        """Accumulate a batch of activations (N, width)."""
        a = a.detach().float().reshape(-1, self.width)
        if not torch.isfinite(a).all():
            raise CompressorError("calibration produced NaN or inf activations (non-finite weights?)")
        if self.histogram is None:
            self.count += a.shape[0]
            self.total += a.sum(0).double()
            self.total_sq += (a * a).sum(0).double()
            self.peak = torch.maximum(self.peak, a.amax(0)) if a.shape[0] else self.peak
            if self.gram is not None:
                self.gram += (a.T @ a).double()
        else:
            scale = torch.where(self.bins_top > 0, ENTROPY_BINS / self.bins_top.clamp(min=1e-30),
                                torch.zeros_like(self.bins_top))
            idx = torch.ceil(a * scale).clamp(0, ENTROPY_BINS).long()
            idx = idx + torch.arange(self.width) * (ENTROPY_BINS + 1)
            counts = torch.bincount(idx.reshape(-1), minlength=self.width * (ENTROPY_BINS + 1))
            self.histogram += counts.reshape(self.width, ENTROPY_BINS + 1).double()

    def start_histogram(self) -> None:
        """Second pass (only histograms): each unit over [0, its peak] in ENTROPY_BINS bins plus a zero bin."""
        self.bins_top = self.peak.clone()
        self.histogram = torch.zeros(self.width, ENTROPY_BINS + 1, dtype=torch.float64)

    def mean(self) -> torch.Tensor:
        return (self.total / max(self.count, 1)).float()

    def second_moment(self) -> torch.Tensor:
        """E[[a; 1][a; 1]^T] (width + 1 square, float64): what least-squares refitting needs."""
        if self.gram is None:
            raise CompressorError("second moments were not recorded (record_activations(..., gram=True))")
        n = max(self.count, 1)
        m = torch.zeros(self.width + 1, self.width + 1, dtype=torch.float64)
        m[:-1, :-1] = self.gram / n
        m[:-1, -1] = m[-1, :-1] = self.total / n
        m[-1, -1] = 1.0
        return m

    def variance(self) -> torch.Tensor:
        m = self.total / max(self.count, 1)
        return (self.total_sq / max(self.count, 1) - m * m).clamp(min=0).float()

    def entropy(self) -> torch.Tensor:
        """Shannon entropy (nats) of each unit's activation histogram; a constant unit scores 0."""
        if self.histogram is None:
            raise CompressorError("entropy needs the histogram pass (start_histogram) before scoring")
        p = self.histogram / self.histogram.sum(1, keepdim=True).clamp(min=1)
        return -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(1).float()

    def score(self, rule: str) -> torch.Tensor:
        return {"mean": self.mean, "variance": self.variance, "entropy": self.entropy}[rule]()


@contextlib.contextmanager
def record_activations(net: NeRF, layers: list[str], gram: bool = False) -> Iterator[dict[str, UnitStats]]:
    """Within the block, every forward of `net` adds the post-ReLU outputs of `layers` to the stats.

    Forward hooks on the Linear layers see the pre-ReLU output; the ReLU is applied here, as the NeRF
    forward applies it next."""
    modules = dict(net.named_modules())
    stats = {name: UnitStats(modules[name].out_features, gram) for name in layers}
    handles = [modules[name].register_forward_hook(
        lambda _m, _i, out, s=stats[name]: s.add(torch.relu(out))) for name in layers]
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()


def calibration_statistics(pair: ModelPair, calibration: Rays, layers: list[str],
                           settings: RenderSettings = RenderSettings(), histogram: bool = False,
                           gram: bool = False, chunk: int = 128) -> dict[str, dict[str, UnitStats]]:
    """Per network ('coarse', 'fine') and layer, statistics of activations while rendering `calibration`.

    Rendering is deterministic (no jitter), so the histogram pass (for entropy) sees the same points."""
    nets = {k: check_nerf(v, f"{k} network") for k, v in pair.networks().items()}
    with contextlib.ExitStack() as stack:
        stats = {k: stack.enter_context(record_activations(v, layers, gram)) for k, v in nets.items()}
        passes = 2 if histogram else 1
        for p in range(passes):
            if p == 1:
                for per_layer in stats.values():
                    for s in per_layer.values():
                        s.start_histogram()
            with torch.inference_mode():
                for start in range(0, len(calibration), chunk):
                    render_rays(pair, calibration[start:start + chunk], settings)
    return stats


class StatisticsCache(CalibrationCache):
    """The last few calibration statistics, reused while the same networks render the same calibration
    rays: a ratio sweep, or several scoring rules over one checkpoint, records activations once.

    An entry is used only while every parameter and ray tensor it was taken from is the same live object
    at the same version (torch bumps a tensor's version on every in-place change), and when it holds at
    least what is asked (an entry with second moments or histograms also answers plainer requests: the
    first-pass sums are the same). Results are therefore identical with or without the cache."""

    def __init__(self, size: int = 4) -> None:
        super().__init__(size)

    def get(self, pair: ModelPair, calibration: Rays, layers: list[str], settings: RenderSettings,
            histogram: bool, gram: bool) -> dict[str, dict[str, UnitStats]] | None:
        def holds(how: tuple[frozenset, RenderSettings, bool, bool]) -> bool:
            held, set_, hist, gr = how
            return set(layers) <= held and set_ == settings and hist >= histogram and gr >= gram

        stats = self.find(pair, calibration, holds)
        return None if stats is None else {net: {name: per[name] for name in layers} for net, per in stats.items()}

    def put(self, pair: ModelPair, calibration: Rays, layers: list[str], settings: RenderSettings,
            histogram: bool, gram: bool, stats: dict[str, dict[str, UnitStats]]) -> None:
        self.add(pair, calibration, (frozenset(layers), settings, histogram, gram), stats)


STATISTICS_CACHE = StatisticsCache()


def cached_calibration_statistics(pair: ModelPair, calibration: Rays, layers: list[str],
                                  settings: RenderSettings = RenderSettings(), histogram: bool = False,
                                  gram: bool = False) -> dict[str, dict[str, UnitStats]]:
    """`calibration_statistics` through STATISTICS_CACHE."""
    hit = STATISTICS_CACHE.get(pair, calibration, layers, settings, histogram, gram)
    if hit is not None:
        return hit
    stats = calibration_statistics(pair, calibration, layers, settings, histogram, gram)
    STATISTICS_CACHE.put(pair, calibration, layers, settings, histogram, gram, stats)
    return stats


# ---------------------------------------------------------------- scores

def weight_scores(net: NeRF, rule: str, graph: tuple[Producer, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    """Scores from weights alone: L2 norm of incoming rows / outgoing columns, or seeded random."""
    modules = dict(net.named_modules())
    g = torch.Generator().manual_seed(seed)
    out = {}
    for prod in graph:
        w = modules[prod.layer].weight.detach()
        if rule == "weight-in":
            out[prod.layer] = w.norm(dim=1)
        elif rule == "weight-out":
            out[prod.layer] = consumer_columns(net, prod).norm(dim=0)
        elif rule == "random":
            out[prod.layer] = torch.rand(prod.width, generator=g)
        else:
            raise CompressorError(f"{rule!r}: not a weight-based scoring rule; choose from {', '.join(WEIGHT_RULES)}")
    return out


def consumer_columns(net: NeRF, prod: Producer) -> torch.Tensor:
    """The producer's columns in all its consumers, stacked: (sum of consumer out-features, width)."""
    modules = dict(net.named_modules())
    return torch.cat([modules[c.layer].weight.detach()[:, c.offset:c.offset + prod.width] for c in prod.consumers])


def obs_scores(columns: torch.Tensor, moment: torch.Tensor, damping: float = 1e-6) -> torch.Tensor:
    """Greedy Optimal Brain Surgeon elimination order of a layer's units: the unit removed at step t scores t.

    `columns` (out, n) are the units' outgoing weights, `moment` E[[a; 1][a; 1]^T] of their activations.
    Removing unit j while refitting the others (least squares, as `refit_consumer` does) costs
    ||W[:, j]||^2 / [M^-1]_jj on the calibration data; each step removes the cheapest unit and updates W and
    M^-1 (Hassibi & Stork 1993, applied to whole input columns). Units that others predict well (copies,
    dead or constant units) go first. The order is a ranking, so any ratio keeps a prefix of it."""
    with single_thread():
        return _obs_order(columns, moment, damping)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run a loop of tiny tensor ops on one thread: with a busy CPU (a training job beside us), OpenMP
    barriers made the OBS loop 180x slower on two threads (67 s against 0.4 s measured)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _obs_order(columns: torch.Tensor, moment: torch.Tensor, damping: float) -> torch.Tensor:
    n = columns.shape[1]
    h = moment.double()
    hinv = torch.linalg.inv(h + damping * h.diagonal().mean().clamp(min=1e-12) * torch.eye(n + 1, dtype=torch.float64))
    w = torch.cat([columns.double(), torch.zeros(columns.shape[0], 1, dtype=torch.float64)], 1)
    alive = torch.ones(n, dtype=torch.bool)
    scores = torch.empty(n)
    for step in range(n):
        diag = hinv.diagonal()[:n]
        cost = torch.where(alive, (w[:, :n] ** 2).sum(0) / diag.clamp(min=1e-300), torch.inf)
        j = int(torch.argmin(cost))
        scores[j] = step
        w -= torch.outer(w[:, j], hinv[j]) / hinv[j, j]
        hinv = hinv - torch.outer(hinv[:, j], hinv[j]) / hinv[j, j]
        alive[j] = False
    return scores


# ---------------------------------------------------------------- which units to keep

def kept_width(width: int, ratio: float, round_to: int = 16) -> int:
    """Units kept of `width` when removing `ratio` of them, rounded to a multiple of `round_to`.

    The result is the nearest of {multiples of round_to up to width} and width itself (ties keep more),
    so it is at least one unit, monotone in the ratio, and `width` when ratio is 0."""
    check_ratio(ratio, "kept_width")
    target = width * (1.0 - ratio)
    if ratio == 0.0:
        return width
    step = max(1, int(round_to))
    candidates = [m for m in range(step, width + 1, step)] + [width]
    return min(candidates, key=lambda c: (abs(c - target), -c))


def check_ratio(ratio: float, who: str) -> float:
    if not isinstance(ratio, (int, float)) or math.isnan(ratio) or not 0.0 <= ratio < 1.0:
        raise CompressorError(f"{who}: pruning ratio must be in [0, 1), got {ratio}")
    return float(ratio)


def plan_keep(scores: Mapping[str, torch.Tensor], ratio: float, scope: str = "layer",
              round_to: int = 16) -> dict[str, torch.Tensor]:
    """Sorted indices of the units to keep in each layer: the highest-scoring ones.

    `layer` scope removes `ratio` of each layer; `global` ranks all units together after dividing each
    layer's scores by their mean (scores of different layers are not on one scale), removes `ratio` of all
    units but never a layer's last one, then rounds each layer's count like `layer` scope."""
    check_ratio(ratio, "plan_keep")
    if scope not in SCOPES:
        raise CompressorError(f"{scope!r}: unknown pruning scope; choose from {', '.join(SCOPES)}")
    for name, s in scores.items():
        if s.ndim != 1 or s.numel() == 0 or not torch.isfinite(s).all():
            raise CompressorError(f"{name}: unit scores must be a non-empty finite 1-D tensor")
    if scope == "layer":
        counts = {k: kept_width(len(s), ratio, round_to) for k, s in scores.items()}
    else:
        counts = _global_counts(scores, ratio, round_to)
    out = {}
    for name, s in scores.items():
        order = torch.sort(s.float(), descending=True, stable=True).indices
        out[name] = torch.sort(order[:counts[name]]).values
    return out


def _global_counts(scores: Mapping[str, torch.Tensor], ratio: float, round_to: int) -> dict[str, int]:
    names = list(scores)
    normed = [s.double() / s.double().mean() if s.double().mean() > 0 else torch.zeros(len(s), dtype=torch.float64)
              for s in scores.values()]
    layer_of = torch.cat([torch.full((len(s),), i) for i, s in enumerate(normed)])
    order = torch.sort(torch.cat(normed), stable=True).indices
    left = [len(s) for s in normed]
    to_remove = round(ratio * sum(left))
    for layer in layer_of[order].tolist():
        if to_remove == 0:
            break
        if left[layer] > 1:
            left[layer] -= 1
            to_remove -= 1
    out = {}
    for name, n, k in zip(names, (len(s) for s in normed), left):
        out[name] = kept_width(n, 1.0 - k / n, round_to) if k < n else n
    return out


# ---------------------------------------------------------------- slicing

def refit_consumer(weight: torch.Tensor, bias: torch.Tensor, kept: torch.Tensor, moment: torch.Tensor,
                   rcond: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares repair of a consumer after its producer loses units.

    `weight` (out, n) are the consumer's columns for the producer's n units, `kept` the surviving units,
    `moment` E[[a; 1][a; 1]^T] of the producer's activations. Returns new columns for the kept units and a
    new bias such that W_k a_k + b' best matches W a + b on the calibration data: each removed unit is
    replaced by its linear regression on the kept units and a constant (mean compensation is the special
    case of regressing on the constant alone). Units that are zero, constant or copies of kept units on
    the data are repaired exactly. The normal equations are solved by SVD (singular values below `rcond`
    times the largest are dropped), so dead or collinear kept units do no harm."""
    n = weight.shape[1]
    removed = torch.ones(n + 1, dtype=torch.bool)
    removed[kept] = False
    removed[n] = False
    rows = torch.cat([kept, torch.tensor([n])])
    m = moment.double()
    coef = torch.linalg.lstsq(m[rows][:, rows], m[rows][:, removed], rcond=rcond, driver="gelsd").solution
    delta = weight[:, removed[:n]].double() @ coef.T
    return (weight[:, kept].double() + delta[:, :-1]).float(), (bias.double() + delta[:, -1]).float()


def prune_network(net: NeRF, keep: Mapping[str, torch.Tensor], fill: Mapping[str, torch.Tensor] | None = None,
                  moments: Mapping[str, torch.Tensor] | None = None) -> NeRF:
    """A new NeRF holding only the units `keep[layer]` (indices) of each listed prunable layer.

    Each producer loses the rows of removed units, and every consumer the matching columns (at the
    consumer's offset). Layers not in `keep` stay whole; `net` is not modified. Optional repair of the
    consumers, per layer: `fill[layer]` (one value per unit, e.g. its mean activation on calibration data)
    replaces each removed unit by that constant, folded into the consumers' biases; `moments[layer]`
    (see `refit_consumer`) refits the consumers by least squares instead."""
    check_nerf(net, "prune_network")
    graph = {p.layer: p for p in dependency_graph(net.config, views=True)}
    unknown = sorted(set(keep) - set(graph))
    if unknown:
        raise CompressorError(f"prune_network: {unknown[0]} is not a prunable layer; choose from {', '.join(graph)}")
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    column_masks: dict[str, torch.Tensor] = {}
    widths: dict[str, int] = {}
    for layer, idx in keep.items():
        prod = graph[layer]
        idx = torch.as_tensor(idx).long().reshape(-1)
        if idx.numel() == 0 or idx.min() < 0 or idx.max() >= prod.width or idx.unique().numel() != idx.numel():
            raise CompressorError(f"{layer}: kept units must be 1..{prod.width} distinct indices in [0, {prod.width})")
        idx = torch.sort(idx).values
        state[f"{layer}.weight"] = state[f"{layer}.weight"][idx]
        state[f"{layer}.bias"] = state[f"{layer}.bias"][idx]
        removed = torch.ones(prod.width, dtype=torch.bool)
        removed[idx] = False
        constant = None if fill is None or layer not in fill else torch.as_tensor(fill[layer]).float().reshape(-1)
        if constant is not None and constant.numel() != prod.width:
            raise CompressorError(f"{layer}: fill has {constant.numel()} values for {prod.width} units")
        moment = None if moments is None or layer not in moments else torch.as_tensor(moments[layer])
        if moment is not None and tuple(moment.shape) != (prod.width + 1,) * 2:
            raise CompressorError(f"{layer}: moment has shape {tuple(moment.shape)}, expected "
                                  f"{(prod.width + 1,) * 2}")
        for c in prod.consumers:
            w, b = state[f"{c.layer}.weight"], state[f"{c.layer}.bias"]
            cols = slice(c.offset, c.offset + prod.width)
            if moment is not None and removed.any():
                new_cols, state[f"{c.layer}.bias"] = refit_consumer(w[:, cols], b, idx, moment)
                w[:, c.offset + idx] = new_cols
            elif constant is not None and removed.any():
                state[f"{c.layer}.bias"] = b + w[:, cols][:, removed] @ constant[removed]
            mask = column_masks.setdefault(c.layer, torch.ones(state[f"{c.layer}.weight"].shape[1], dtype=torch.bool))
            mask[c.offset:c.offset + prod.width] &= ~removed
        widths[layer] = idx.numel()
    for layer, mask in column_masks.items():
        state[f"{layer}.weight"] = state[f"{layer}.weight"][:, mask]
    cfg = net.config
    hidden = tuple(widths.get(f"pts_linears.{i}", w) for i, w in enumerate(cfg.widths))
    new_cfg = dataclasses.replace(cfg, hidden_widths=hidden if hidden != cfg.widths else cfg.hidden_widths,
                                  view_width=widths.get("views_linears.0", cfg.view_width))
    out = NeRF(new_cfg)
    out.load_state_dict({k: v.contiguous() for k, v in state.items()})
    return out.train(net.training)


# ---------------------------------------------------------------- the compressor

@dataclass
class PruneCompressor:
    """Structured pruning of both networks of a pair by one scoring rule (see the module docstring)."""

    name: str
    rule: str = "mean"
    ratio: float = 0.3
    scope: str = "layer"
    round_to: int = 16
    views: bool = False
    seed: int = 0
    repair: str = "none"
    network_ratios: dict[str, float] = field(default_factory=dict)  # per-network overrides of `ratio`
    settings: RenderSettings = field(default_factory=RenderSettings)
    gates: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise CompressorError(f"{self.name}: unknown scoring rule {self.rule!r}; choose from {', '.join(RULES)}")
        if self.scope not in SCOPES:
            raise CompressorError(f"{self.name}: unknown scope {self.scope!r}; choose from {', '.join(SCOPES)}")
        if self.repair not in REPAIRS:
            raise CompressorError(f"{self.name}: unknown repair {self.repair!r}; choose from {', '.join(REPAIRS)}")
        if int(self.round_to) < 1:
            raise CompressorError(f"{self.name}: round_to must be >= 1 (1 = no rounding), got {self.round_to}")
        self.ratio = check_ratio(self.ratio, self.name)
        for net_name, r in self.network_ratios.items():
            if net_name not in ("coarse", "fine"):
                raise CompressorError(f"{self.name}: unknown network {net_name!r}; choose coarse or fine")
            self.network_ratios[net_name] = check_ratio(r, self.name)

    def ratio_for(self, network: str) -> float:
        """The share of units removed from `network` (the per-network override, else `ratio`)."""
        return self.network_ratios.get(network, self.ratio)

    def _statistics(self, pair: ModelPair, calibration: Rays) -> dict[str, dict[str, UnitStats]]:
        check_calibration(calibration, self.name)
        layers = sorted({p.layer for net in pair.networks().values() for p in dependency_graph(net.config, self.views)})
        try:
            return cached_calibration_statistics(pair, calibration, layers, self.settings, self.rule == "entropy",
                                                 gram=self.repair == "lsq" or self.rule == "obs")
        except CompressorError as e:
            raise CompressorError(f"{self.name}: {e}") from None

    def scores(self, pair: ModelPair, calibration: Rays,
               stats: dict[str, dict[str, UnitStats]] | None = None) -> dict[str, dict[str, torch.Tensor]]:
        """Unit scores per network and prunable layer (`stats`: calibration statistics already taken)."""
        nets = {k: check_nerf(v, f"{self.name}: {k} network") for k, v in pair.networks().items()}
        graphs = {k: dependency_graph(v.config, self.views) for k, v in nets.items()}
        if self.rule in WEIGHT_RULES:
            return {k: weight_scores(v, self.rule, graphs[k], self.seed + j) for j, (k, v) in enumerate(nets.items())}
        stats = stats if stats is not None else self._statistics(pair, calibration)
        if self.rule == "obs":
            return {k: {p.layer: obs_scores(consumer_columns(nets[k], p), stats[k][p.layer].second_moment())
                        for p in graphs[k]} for k in nets}
        return {k: {p.layer: stats[k][p.layer].score(self.rule) for p in graphs[k]} for k in nets}

    def compress(self, pair: ModelPair, calibration: Rays) -> ModelPair:
        stats, scores = self.analyse(pair, calibration)
        return self.prune(pair, stats, scores)

    def analyse(self, pair: ModelPair, calibration: Rays
                ) -> tuple[dict[str, dict[str, UnitStats]] | None, dict[str, dict[str, torch.Tensor]]]:
        """Calibration statistics (None for weight rules without repair) and unit scores; they do not depend
        on the ratio, so a search over ratios computes them once and calls `prune` per ratio."""
        for k, net in pair.networks().items():
            check_nerf(net, f"{self.name}: {k} network")
        needs_stats = self.rule in ACTIVATION_RULES or self.repair != "none"
        stats = self._statistics(pair, calibration) if needs_stats else None
        return stats, self.scores(pair, calibration, stats)

    def prune(self, pair: ModelPair, stats: dict[str, dict[str, UnitStats]] | None,
              scores: dict[str, dict[str, torch.Tensor]]) -> ModelPair:
        """The pruned pair for statistics and scores from `analyse` (of this rule, scope and repair)."""
        pruned = {}
        for k, net in pair.networks().items():
            fill = {layer: s.mean() for layer, s in stats[k].items()} if self.repair == "mean" else None
            moments = {layer: s.second_moment() for layer, s in stats[k].items()} if self.repair == "lsq" else None
            keep = plan_keep(scores[k], self.ratio_for(k), self.scope, self.round_to)
            pruned[k] = prune_network(net, keep, fill, moments)
        meta = dict(pair.meta)
        meta["pruning"] = {"compressor": self.name, "rule": self.rule, "ratio": self.ratio, "scope": self.scope,
                           "round_to": int(self.round_to), "views": self.views, "repair": self.repair,
                           "ratios": {k: self.ratio_for(k) for k in pruned},
                           "widths": {k: list(v.config.widths) for k, v in pruned.items()}}
        return ModelPair(pruned["coarse"], pruned.get("fine"), pruned["coarse"].config, meta)


NAMES = {
    "prune-activation": ("mean", "mean |a| of post-ReLU activations on calibration rays"),
    "prune-activation-var": ("variance", "variance of post-ReLU activations on calibration rays"),
    "prune-activation-entropy": ("entropy", "entropy of each unit's activation histogram on calibration rays"),
    "prune-weight-in": ("weight-in", "L2 norm of a unit's incoming weights (baseline)"),
    "prune-weight-out": ("weight-out", "L2 norm of a unit's outgoing weights in every consumer (baseline)"),
    "prune-random": ("random", "seeded random scores (baseline)"),
    "prune-activation-obs": ("obs", "greedy Optimal Brain Surgeon order on activation second moments, "
                                    "least-squares repair of the consumers"),
}
GATES = {("mean", 0.3): {"psnr_drop": 1.0}, ("obs", 0.3): {"psnr_drop": 1.0}}
DEFAULT_REPAIR = {"obs": "lsq"}  # the OBS order assumes the consumers are refitted; others: plain removal


def parse_prune_spec(base: str, param: str | None) -> PruneCompressor:
    """Build the compressor for `base:RATIO[:global][:round=N][:views][:repair=R][:seed=N]`."""
    rule, description = NAMES[base]
    if not param:
        raise CompressorError(f"{base}: give the share of units to remove, e.g. {base}:0.3")
    ratio_text, *options = param.split(":")
    try:
        ratio = float(ratio_text)
    except ValueError:
        raise CompressorError(f"{base}:{param}: ratio {ratio_text!r} is not a number in [0, 1)") from None
    kw: dict = {"repair": DEFAULT_REPAIR.get(rule, "none")}
    for opt in options:
        key, _, value = opt.partition("=")
        try:
            if opt in ("global", "layer"):
                kw["scope"] = opt
            elif opt == "views":
                kw["views"] = True
            elif key == "repair" and value:
                kw["repair"] = value
            elif key in ("round", "seed") and value:
                kw["round_to" if key == "round" else "seed"] = int(value)
            elif key in ("coarse", "fine") and value:
                kw.setdefault("network_ratios", {})[key] = float(value)
            else:
                raise ValueError
        except ValueError:
            raise CompressorError(f"{base}:{param}: unknown option {opt!r}; options are global, layer, views, "
                                  "repair=none|mean|lsq, round=N, seed=N, coarse=R, fine=R") from None
    name = ":".join([f"{base}:{check_ratio(ratio, f'{base}:{param}'):g}", *options])
    return PruneCompressor(name, rule, ratio, gates=dict(GATES.get((rule, ratio), {})), description=description,
                           **kw)


for _base, (_rule, _text) in NAMES.items():
    register(_base, lambda p, b=_base: parse_prune_spec(b, p),
             defaults=("0.15", "0.3", "0.5", "0.85") if _base == "prune-activation" else ("0.3",),
             description=f"structured pruning by {_text}")
