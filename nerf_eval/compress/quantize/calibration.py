"""Calibration inputs of the quantizers: the encoded MLP inputs each network receives while the pair
renders (sub-sampled, seeded) calibration rays, recorded once and cached while the same networks render
the same rays with the same options."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from nerf_eval.compress.base import check_calibration
from nerf_eval.compress.memo import CalibrationCache
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair
from nerf_eval.render import Rays, RenderSettings, render_rays, with_coarse_network

OBSERVERS = ("minmax", "histogram")


@dataclass(frozen=True)
class CalibrationOptions:
    """How calibration rays become MLP inputs: how many rays (sub-sampled, seeded), rendered with `settings`.

    `observer` picks the activation range estimate: "minmax" (keeps every activation in range) or
    "histogram" (torch's L2-optimal clipping)."""

    rays: int = 2048
    seed: int = 0
    settings: RenderSettings = field(default_factory=RenderSettings)
    observer: str = "minmax"

    def __post_init__(self) -> None:
        if self.rays < 1:
            raise CompressorError(f"calibration size must be at least one ray, got {self.rays}")
        if self.observer not in OBSERVERS:
            raise CompressorError(f"{self.observer}: unknown activation observer; choose one of {OBSERVERS}")


def calibration_subset(calibration: Rays, n_rays: int, seed: int = 0) -> Rays:
    """At most `n_rays` of `calibration`, drawn without replacement (seeded)."""
    if len(calibration) <= n_rays:
        return calibration
    g = torch.Generator().manual_seed(seed)
    return calibration[torch.randperm(len(calibration), generator=g)[:n_rays]]


class InputRecorder(nn.Module):
    """Passes inputs through `net` and keeps a copy of each batch (what the renderer feeds the MLP)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.batches: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.detach().clone())
        return self.net(x)


def record_network_inputs(pair: ModelPair, rays: Rays, settings: RenderSettings = RenderSettings()
                          ) -> dict[str, torch.Tensor]:
    """The encoded inputs (N, C) each network of `pair` receives while rendering `rays` (by network name)."""
    recorders = {name: InputRecorder(net) for name, net in pair.networks().items()}
    recording = ModelPair(recorders["coarse"], recorders.get("fine"), pair.config, with_coarse_network(pair).meta)
    with torch.inference_mode():
        for s in range(0, len(rays), settings.chunk):
            render_rays(recording, rays[s:s + settings.chunk], settings)
    return {name: torch.cat(r.batches) for name, r in recorders.items()}


class InputsCache(CalibrationCache):
    """The last few recordings of network inputs, reused while the same networks render the same
    calibration rays with the same options: the static int8 variants and the mixed-precision search over
    one checkpoint render the calibration rays once. See `nerf_eval.compress.memo` for when an entry
    counts as the same; results are identical with or without the cache."""

    def __init__(self, size: int = 2) -> None:
        super().__init__(size)

    def get(self, pair: ModelPair, calibration: Rays, options: tuple) -> dict[str, torch.Tensor] | None:
        return self.find(pair, calibration, lambda how: how == options)

    def put(self, pair: ModelPair, calibration: Rays, options: tuple, inputs: dict[str, torch.Tensor]) -> None:
        self.add(pair, calibration, options, inputs)


INPUTS_CACHE = InputsCache()


def calibration_inputs(pair: ModelPair, calibration: Rays, options: CalibrationOptions, who: str
                       ) -> dict[str, torch.Tensor]:
    """Check the calibration rays, sub-sample them and record each network's MLP inputs (through
    INPUTS_CACHE; callers must not modify the returned tensors in place)."""
    check_calibration(calibration, who)
    key = (options.rays, options.seed, options.settings)
    inputs = INPUTS_CACHE.get(pair, calibration, key)
    if inputs is None:
        rays = calibration_subset(calibration, options.rays, options.seed)
        inputs = record_network_inputs(pair, rays, options.settings)
        INPUTS_CACHE.put(pair, calibration, key, inputs)
    return inputs
