"""Which units to keep: per-layer counts for a pruning ratio (rounded to hardware-friendly widths) and the
highest-scoring units of each layer, ranked per layer or over all layers at once."""

from __future__ import annotations

import math
from typing import Mapping

import torch

from nerf_eval.errors import CompressorError

SCOPES = ("layer", "global")


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

