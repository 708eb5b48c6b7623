"""The pruning compressor: score units with one rule, keep the best of each layer, slice and repair.

Registered names: `prune-activation:R` (mean, plain removal: the reference report's method),
`prune-activation-var:R`, `prune-activation-entropy:R`, `prune-activation-obs:R` (OBS order + `lsq`
repair), `prune-weight-in:R`, `prune-weight-out:R`, `prune-random:R`, where R in
[0, 1) is the share of units removed; options follow as `:global` (one ranking over all layers),
`:round=N` (kept widths are multiples of N, default 16; 1 = exact), `:views` (prune `views_linears.0`
too), `:repair=none|mean|lsq`, `:seed=N` (random rule), `:coarse=R` / `:fine=R` (a ratio for one network),
e.g. `prune-activation:0.3:global:round=1` or `prune-activation-obs:0.3:coarse=0.5`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nerf_eval.compress.base import check_calibration, register
from nerf_eval.compress.params import CompressorSpec, Param
from nerf_eval.compress.prune.graph import check_nerf, dependency_graph, prune_network
from nerf_eval.compress.prune.importance import RULES, Importance, get_importance
from nerf_eval.compress.prune.plan import SCOPES, check_ratio, plan_keep
from nerf_eval.compress.prune.repair import REPAIRS
from nerf_eval.compress.prune.statistics import UnitStats, cached_calibration_statistics
from nerf_eval.errors import CompressorError
from nerf_eval.interrupt import stop_point
from nerf_eval.model import ModelPair
from nerf_eval.render import Rays, RenderSettings


@dataclass
class PruneCompressor:
    """Structured pruning of both networks of a pair by one scoring rule (see the module docstring and
    `nerf_eval.compress.prune.importance` for the rules)."""

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

    @property
    def importance(self) -> Importance:
        """The strategy that scores units by this compressor's rule."""
        return get_importance(self.rule)

    def ratio_for(self, network: str) -> float:
        """The share of units removed from `network` (the per-network override, else `ratio`)."""
        return self.network_ratios.get(network, self.ratio)

    def _statistics(self, pair: ModelPair, calibration: Rays) -> dict[str, dict[str, UnitStats]]:
        check_calibration(calibration, self.name)
        layers = sorted({p.layer for net in pair.networks().values() for p in dependency_graph(net.config, self.views)})
        try:
            return cached_calibration_statistics(pair, calibration, layers, self.settings, self.importance.histogram,
                                                 gram=self.repair == "lsq" or self.importance.gram)
        except CompressorError as e:
            raise CompressorError(f"{self.name}: {e}") from None

    def scores(self, pair: ModelPair, calibration: Rays,
               stats: dict[str, dict[str, UnitStats]] | None = None) -> dict[str, dict[str, torch.Tensor]]:
        """Unit scores per network and prunable layer (`stats`: calibration statistics already taken)."""
        nets = {k: check_nerf(v, f"{self.name}: {k} network") for k, v in pair.networks().items()}
        rule = self.importance
        if not rule.needs_statistics:
            stats = None  # data-free rules score from the weights (and seed) alone
        elif stats is None:
            stats = self._statistics(pair, calibration)
        return {k: rule.scores(net, dependency_graph(net.config, self.views), None if stats is None else stats[k],
                               self.seed + j) for j, (k, net) in enumerate(nets.items())}

    def compress(self, pair: ModelPair, calibration: Rays) -> ModelPair:
        stats, scores = self.analyse(pair, calibration)
        return self.prune(pair, stats, scores)

    def analyse(self, pair: ModelPair, calibration: Rays
                ) -> tuple[dict[str, dict[str, UnitStats]] | None, dict[str, dict[str, torch.Tensor]]]:
        """Calibration statistics (None for weight rules without repair) and unit scores; they do not depend
        on the ratio, so a search over ratios computes them once and calls `prune` per ratio."""
        for k, net in pair.networks().items():
            check_nerf(net, f"{self.name}: {k} network")
        needs_stats = self.importance.needs_statistics or self.repair != "none"
        stats = self._statistics(pair, calibration) if needs_stats else None
        return stats, self.scores(pair, calibration, stats)

    def prune(self, pair: ModelPair, stats: dict[str, dict[str, UnitStats]] | None,
              scores: dict[str, dict[str, torch.Tensor]]) -> ModelPair:
        """The pruned pair for statistics and scores from `analyse` (of this rule, scope and repair)."""
        pruned = {}
        for k, net in pair.networks().items():
            stop_point()
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


SEARCH_RATIOS = (0.0, 0.15, 0.3, 0.5)  # the pruning ratios autocompress tries per network by default


def prune_params(rule: str) -> tuple[Param, ...]:
    """The declared parameters of a `prune-*` name, in the order canonical names print them."""
    ratio = dict(type=float, low=0.0, high=1.0, bounds="[)")
    return (
        Param("ratio", **ratio, positional=True, required=True, help="share of units to remove, the pruning ratio",
              example="0.3", search=SEARCH_RATIOS),
        Param("scope", str, "layer", choices=SCOPES, bare=True, help="ranking scope"),
        Param("round", int, 16, help="width multiple (1 = exact)"),  # >= 1 checked by PruneCompressor
        Param("views", bool, False, help="whether to prune views_linears.0"),
        Param("repair", str, DEFAULT_REPAIR.get(rule, "none"), choices=REPAIRS, help="repair"),
        Param("seed", int, 0, help="random seed"),
        Param("coarse", **ratio, help="coarse network's pruning ratio", search=SEARCH_RATIOS),
        Param("fine", **ratio, help="fine network's pruning ratio"),
    )


def prune_compressor(spec: CompressorSpec) -> PruneCompressor:
    """The PruneCompressor named by a parsed `prune-*` spec (see the module docstring for the options)."""
    rule, description = NAMES[spec.base]
    v = spec.values
    ratios = {k: v[k] for k in ("coarse", "fine") if v[k] is not None}
    return PruneCompressor(str(spec), rule, v["ratio"], v["scope"], v["round"], v["views"], v["seed"], v["repair"],
                           ratios, gates=dict(GATES.get((rule, v["ratio"]), {})), description=description)


for _base, (_rule, _text) in NAMES.items():
    register(_base, prune_compressor, params=prune_params(_rule), search="prune",
             defaults=("0.15", "0.3", "0.5", "0.85") if _base == "prune-activation" else ("0.3",),
             description=f"structured pruning by {_text}")
