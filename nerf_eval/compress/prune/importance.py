"""How important each hidden unit is: one strategy object per scoring rule (higher = more important).

Scoring rules: activation statistics of post-ReLU outputs on calibration rays (`mean` |a|, `variance`,
`entropy` of the activation histogram), the L2 norm of a unit's incoming weights (`weight-in`, its row)
or of its outgoing weights (`weight-out`, its columns in every consumer), and seeded `random` scores;
and `obs`, the greedy Optimal Brain Surgeon order from activation second moments and outgoing weights
(`obs_scores`), which assumes the least-squares repair of `nerf_eval.compress.prune.repair`.

Every strategy answers `scores(net, graph, stats, seed)` with one score per unit of each producer of
`graph`, in the spirit of Torch-Pruning's importance classes, and says which calibration statistics it
needs (`needs_statistics`, `histogram`, `gram`), so the compressor records only those. `IMPORTANCE`
maps rule names to strategies.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Mapping, Protocol

import torch

from nerf_eval.compress.prune.graph import Producer, consumer_columns
from nerf_eval.compress.prune.statistics import UnitStats
from nerf_eval.errors import CompressorError
from nerf_eval.hardware import intra_op_threads
from nerf_eval.model import NeRF


class Importance(Protocol):
    """A scoring rule: per-unit scores of every producer of a network (higher = more important)."""

    needs_statistics: bool  # reads activation statistics on calibration rays
    histogram: bool  # ... including per-unit histograms (the second recording pass)
    gram: bool  # ... including second moments E[a a^T]

    def scores(self, net: NeRF, graph: tuple[Producer, ...], stats: Mapping[str, UnitStats] | None,
               seed: int = 0) -> dict[str, torch.Tensor]:
        """Scores by producer layer; `stats` by layer (None when `needs_statistics` is false)."""
        ...


@dataclass(frozen=True)
class ActivationImportance:
    """A statistic of each unit's post-ReLU activations on calibration rays: "mean", "variance" or "entropy"."""

    statistic: str
    needs_statistics: bool = True
    gram: bool = False

    @property
    def histogram(self) -> bool:
        return self.statistic == "entropy"

    def scores(self, net: NeRF, graph: tuple[Producer, ...], stats: Mapping[str, UnitStats] | None,
               seed: int = 0) -> dict[str, torch.Tensor]:
        return {p.layer: getattr(stats[p.layer], self.statistic)() for p in graph}


@dataclass(frozen=True)
class OBSImportance:
    """The greedy Optimal Brain Surgeon elimination order (`obs_scores`) of each producer's units."""

    needs_statistics: bool = True
    histogram: bool = False
    gram: bool = True

    def scores(self, net: NeRF, graph: tuple[Producer, ...], stats: Mapping[str, UnitStats] | None,
               seed: int = 0) -> dict[str, torch.Tensor]:
        return {p.layer: obs_scores(consumer_columns(net, p), stats[p.layer].second_moment()) for p in graph}


@dataclass(frozen=True)
class WeightNormImportance:
    """The L2 norm of a unit's incoming weights (`direction` "in": its row) or outgoing weights ("out": its
    columns in every consumer); data-free."""

    direction: str
    needs_statistics: bool = False
    histogram: bool = False
    gram: bool = False

    def scores(self, net: NeRF, graph: tuple[Producer, ...], stats: Mapping[str, UnitStats] | None = None,
               seed: int = 0) -> dict[str, torch.Tensor]:
        if self.direction == "out":
            return {p.layer: consumer_columns(net, p).norm(dim=0) for p in graph}
        modules = dict(net.named_modules())
        return {p.layer: modules[p.layer].weight.detach().norm(dim=1) for p in graph}


@dataclass(frozen=True)
class RandomImportance:
    """Seeded uniform random scores (a baseline): one generator per network, drawn producer by producer."""

    needs_statistics: bool = False
    histogram: bool = False
    gram: bool = False

    def scores(self, net: NeRF, graph: tuple[Producer, ...], stats: Mapping[str, UnitStats] | None = None,
               seed: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return {p.layer: torch.rand(p.width, generator=g) for p in graph}


IMPORTANCE: dict[str, Importance] = {
    "mean": ActivationImportance("mean"),
    "variance": ActivationImportance("variance"),
    "entropy": ActivationImportance("entropy"),
    "obs": OBSImportance(),
    "weight-in": WeightNormImportance("in"),
    "weight-out": WeightNormImportance("out"),
    "random": RandomImportance(),
}
RULES = tuple(IMPORTANCE)
ACTIVATION_RULES = tuple(rule for rule, imp in IMPORTANCE.items() if imp.needs_statistics)
WEIGHT_RULES = tuple(rule for rule, imp in IMPORTANCE.items() if not imp.needs_statistics)


def get_importance(rule: str) -> Importance:
    """The strategy of scoring rule `rule`, or a CompressorError naming the rules."""
    try:
        return IMPORTANCE[rule]
    except KeyError:
        raise CompressorError(f"{rule!r}: unknown scoring rule; choose from {', '.join(RULES)}") from None


def weight_scores(net: NeRF, rule: str, graph: tuple[Producer, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    """Scores from weights alone: L2 norm of incoming rows / outgoing columns, or seeded random."""
    if rule not in WEIGHT_RULES:
        raise CompressorError(f"{rule!r}: not a weight-based scoring rule; choose from {', '.join(WEIGHT_RULES)}")
    return IMPORTANCE[rule].scores(net, graph, None, seed)


def obs_scores(columns: torch.Tensor, moment: torch.Tensor, damping: float = 1e-6) -> torch.Tensor:
    """Greedy Optimal Brain Surgeon elimination order of a layer's units: the unit removed at step t scores t.

    `columns` (out, n) are the units' outgoing weights, `moment` E[[a; 1][a; 1]^T] of their activations.
    Removing unit j while refitting the others (least squares, as `refit_consumer` does) costs
    ||W[:, j]||^2 / [M^-1]_jj on the calibration data; each step removes the cheapest unit and updates W and
    M^-1 (Hassibi & Stork 1993, applied to whole input columns). Units that others predict well (copies,
    dead or constant units) go first. The order is a ranking, so any ratio keeps a prefix of it."""
    with single_thread():
        return _obs_order(columns, moment, damping)


def single_thread() -> contextlib.AbstractContextManager[None]:
    """Run a loop of tiny tensor ops on one thread: with a busy CPU (a training job beside us), OpenMP
    barriers made the OBS loop 180x slower on two threads (67 s against 0.4 s measured)."""
    return intra_op_threads(1)


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

