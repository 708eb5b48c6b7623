"""In-memory caches of calibration results that must never serve stale data.

A result computed from a model's parameters and a batch of calibration rays stays valid while every one
of those tensors is the same live object at the same version: torch bumps a tensor's version on every
in-place change, and a weak reference tells a freed tensor from a new one that reused its id.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch

from nerf_eval.model import ModelPair
from nerf_eval.render import Rays


def pair_and_ray_tensors(pair: ModelPair, rays: Rays) -> list[torch.Tensor]:
    """Every parameter of the pair's networks and every tensor of the rays (what calibration reads)."""
    params = [p for net in pair.networks().values() for p in net.parameters()]
    return params + [rays.origins, rays.directions, rays.viewdirs, rays.near, rays.far]


class LiveKey:
    """The identity and version of each tensor in a list, matched later against another list."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self.state = tuple((id(t), t._version) for t in tensors)
        self.refs = [weakref.ref(t) for t in tensors]

    def matches(self, tensors: list[torch.Tensor]) -> bool:
        return (len(self.refs) == len(tensors) and all(r() is t for r, t in zip(self.refs, tensors))
                and self.state == tuple((id(t), t._version) for t in tensors))


class CalibrationCache:
    """The `size` most recent results, each kept with the pair and rays it was computed from and a
    description of how; a lookup returns the newest result whose tensors are unchanged (`LiveKey`) and
    whose description the caller accepts."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: list[tuple[LiveKey, Any, Any]] = []

    def find(self, pair: ModelPair, rays: Rays, accepts: Callable[[Any], bool]) -> Any | None:
        tensors = pair_and_ray_tensors(pair, rays)
        return next((value for key, how, value in self.entries if accepts(how) and key.matches(tensors)), None)

    def add(self, pair: ModelPair, rays: Rays, how: Any, value: Any) -> None:
        entry = (LiveKey(pair_and_ray_tensors(pair, rays)), how, value)
        self.entries = [entry] + self.entries[: self.size - 1]
