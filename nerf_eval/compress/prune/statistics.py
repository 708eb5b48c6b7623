"""Per-unit statistics of post-ReLU activations while a pair renders calibration rays.

Sums, squares, peaks, optional second moments (for least-squares repair and the OBS order) and optional
per-unit histograms (for the entropy rule) are accumulated by forward hooks (`record_activations`).
`cached_calibration_statistics` reuses a recording while the same networks render the same rays, so a
ratio sweep or several rules over one checkpoint render the calibration rays once.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from nerf_eval.compress.memo import CalibrationCache
from nerf_eval.compress.prune.graph import check_nerf
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair, NeRF
from nerf_eval.render import Rays, RenderSettings, render_rays, with_coarse_network

ENTROPY_BINS = 32


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
    pair = with_coarse_network(pair)  # the coarse network's statistics, also where a table stands in for it
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

