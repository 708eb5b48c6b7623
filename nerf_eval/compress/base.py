"""The compressor interface and the registry of compressors by name.

A compressor takes a float ModelPair and calibration rays (from training views) and returns a ModelPair
that renders through the same renderer: its networks map fp32 encoded inputs (N, C) to fp32 raw
outputs (N, 4). Names may carry one parameter after a colon (`prune-activation:0.3`); the registry
keeps factories by base name, and a listing of concrete names for "run them all".
"""

from __future__ import annotations

import fnmatch
import io
from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

import torch
from torch import nn

from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair
from nerf_eval.render import OCCUPANCY_KEY, Rays


@runtime_checkable
class Compressor(Protocol):
    """What every compressor provides. `gates` are default quality thresholds (see the plugin's gates)."""

    name: str
    gates: dict[str, float]

    def compress(self, pair: ModelPair, calibration: Rays) -> ModelPair:
        """Return a compressed copy of `pair`; never modify `pair` itself."""
        ...


@dataclass
class FunctionCompressor:
    """A compressor made from a plain function `fn(pair, calibration) -> ModelPair`."""

    name: str
    fn: Callable[[ModelPair, Rays], ModelPair]
    gates: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def compress(self, pair: ModelPair, calibration: Rays) -> ModelPair:
        return self.fn(pair, calibration)


Factory = Callable[[str | None], Compressor]


@dataclass
class Registration:
    factory: Factory
    defaults: tuple[str | None, ...]  # parameters listed by `available()` (None = no parameter)
    description: str = ""


class Registry:
    """Compressors by name. `register` adds a factory; `get("name:param")` builds one.

    A composition `a:p+b:q` is built by `compose(spec, registry)`, which `nerf_eval.compress.pipeline`
    installs when it is imported (the package imports it), so this module does not import it back."""

    compose: Callable[[str, "Registry"], "Compressor"] | None = None

    def __init__(self) -> None:
        self._entries: dict[str, Registration] = {}

    def register(self, name: str, factory: Factory, defaults: tuple[str | None, ...] = (None,),
                 description: str = "", replace: bool = False) -> None:
        if ":" in name:
            raise CompressorError(f"{name}: compressor base names cannot contain ':'")
        if name in self._entries and not replace:
            raise CompressorError(f"{name}: a compressor of that name is already registered")
        self._entries[name] = Registration(factory, tuple(defaults), description)

    def add(self, compressor: Compressor, replace: bool = False) -> Compressor:
        """Register a ready compressor object under its own name (no parameter)."""
        self.register(compressor.name, lambda _p, c=compressor: c, (None,),
                      getattr(compressor, "description", ""), replace)
        return compressor

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def __contains__(self, spec: str) -> bool:
        return all(stage.split(":", 1)[0] in self._entries for stage in spec.split("+"))

    def get(self, spec: str) -> Compressor:
        if "+" in spec:  # a composition `a:p+b:q`, its stages looked up in this registry
            if Registry.compose is None:
                raise CompressorError(f"{spec}: compositions need nerf_eval.compress.pipeline imported")
            return Registry.compose(spec, self)
        base, _, param = spec.partition(":")
        if base not in self._entries:
            raise CompressorError(f"{spec}: unknown compressor; known: {', '.join(sorted(self._entries))}")
        comp = self._entries[base].factory(param or None)
        if not isinstance(comp, Compressor):
            raise CompressorError(f"{spec}: factory returned {type(comp).__name__}, not a Compressor")
        return comp

    def available(self) -> list[str]:
        """Concrete names (with default parameters) in registration order."""
        out = []
        for base, reg in self._entries.items():
            out.extend(base if p is None else f"{base}:{p}" for p in reg.defaults)
        return out

    def describe(self) -> dict[str, str]:
        return {base: reg.description for base, reg in self._entries.items()}

    def select(self, patterns: list[str]) -> list[str]:
        """Names matching any of `patterns` (exact names with parameters, or globs over `available()`).

        A pattern that matches nothing is an error (a typo must not silently run nothing)."""
        names = self.available()
        out: list[str] = []
        for pat in patterns:
            if any(ch in pat for ch in "*?["):
                hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
                if not hits:
                    raise CompressorError(f"{pat}: no registered compressor matches; known: {', '.join(names)}")
            else:
                self.get(pat)  # raises for unknown names
                hits = [pat]
            out.extend(h for h in hits if h not in out)
        return out


REGISTRY = Registry()


def register(name: str, factory: Factory | None = None, defaults: tuple[str | None, ...] = (None,),
             description: str = "", replace: bool = False):
    """Register a compressor factory; usable as a decorator: `@register("my-comp")`."""
    if factory is None:
        def deco(f: Factory) -> Factory:
            REGISTRY.register(name, f, defaults, description, replace)
            return f
        return deco
    REGISTRY.register(name, factory, defaults, description, replace)
    return factory


def get_compressor(spec: str) -> Compressor:
    return REGISTRY.get(spec)


def available() -> list[str]:
    return REGISTRY.available()


def check_calibration(calibration: Rays, who: str) -> None:
    """Refuse empty or non-finite calibration rays with one line naming the compressor."""
    if calibration is None or len(calibration) == 0:
        raise CompressorError(f"{who}: empty calibration set (need at least one ray)")
    for name in ("origins", "directions", "viewdirs", "near", "far"):
        if not torch.isfinite(getattr(calibration, name)).all():
            raise CompressorError(f"{who}: calibration rays contain NaN or inf in {name}")


def serialized_size(module: nn.Module | ModelPair) -> int:
    """Bytes that `torch.save` writes for the state of a network or of a whole pair (scales included,
    and a pair's occupancy grid, which is saved with it)."""
    nets = module.networks() if isinstance(module, ModelPair) else {"net": module}
    state = {k: v.state_dict() for k, v in nets.items()}
    grid = module.meta.get(OCCUPANCY_KEY) if isinstance(module, ModelPair) else None
    if grid is not None:
        state[OCCUPANCY_KEY] = grid.to_state()
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getbuffer().nbytes
