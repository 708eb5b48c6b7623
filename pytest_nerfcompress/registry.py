"""The compressors a session runs: nerf_eval's registry, with the installed packages' entry points
(`nerf_eval.compress.discovery`, as for the CLI), plus the two pytest ways users add their own:

1. `@pytest_nerfcompress.compressor(...)` in a conftest.py (a function, Compressor or fixture);
2. the hook `pytest_nerfcompress_register(registry, config)` in a conftest or plugin.
The global `nerf_eval.compress.REGISTRY` is never modified: each session works on a copy.
"""

from __future__ import annotations

import copy
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pytest

from nerf_eval.compress import REGISTRY, Compressor, FunctionCompressor, Registry
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair
from nerf_eval.render import Rays
from pytest_nerfcompress.declare import declarations, fixture_name

SKIPPED_MODULES = ("_pytest.", "pytest_nerfcompress.", "pluggy", "xdist.", "pytest_benchmark.")


@dataclass
class FixtureCompressor:
    """Stands in the registry for a compressor that a pytest fixture provides."""

    name: str
    fixture: str
    gates: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def compress(self, pair: ModelPair, calibration: Rays) -> ModelPair:
        raise CompressorError(f"{self.name}: provided by the fixture {self.fixture!r}; use it through "
                              "the nerf_compressor fixture")


def as_compressor(name: str, value: Any, gates: Mapping[str, float], where: str) -> Compressor:
    """A Compressor named `name` from a Compressor object or a function (pair, calibration)."""
    if isinstance(value, Compressor) and not isinstance(value, type):
        return FunctionCompressor(name, value.compress, {**dict(value.gates or {}), **gates},
                                  getattr(value, "description", ""))
    if callable(value):
        return FunctionCompressor(name, value, dict(gates))
    raise CompressorError(f"{name}: {where} gave {type(value).__name__}, not a Compressor or a function "
                          "(pair, calibration) -> ModelPair")


def base_registry() -> Registry:
    """A copy of nerf_eval's registry (what code registered) with the installed packages' entry points
    loaded afresh for this session, by the same discovery the CLI uses (`nerf_eval.compress.discovery`)."""
    registry = REGISTRY.copy(entry_points=False)
    registry.load_entry_points()
    return registry


def applicable_modules(config: pytest.Config, path: Path | None) -> list[types.ModuleType]:
    """Plugin modules whose declarations apply to tests at `path`: conftests in its directory or
    above (every conftest when `path` is None), and all other plugin modules."""
    mods = []
    for plugin in config.pluginmanager.get_plugins():
        if not isinstance(plugin, types.ModuleType) or plugin.__name__.startswith(SKIPPED_MODULES):
            continue
        file = getattr(plugin, "__file__", None)
        if file and Path(file).name == "conftest.py" and path is not None:
            if not Path(path).resolve().is_relative_to(Path(file).resolve().parent):
                continue
        mods.append(plugin)
    return sorted(mods, key=lambda m: (getattr(m, "__file__", None) or "", m.__name__))


def add_declared(registry: Registry, modules: Iterable[types.ModuleType]) -> None:
    """Register the objects marked with `@compressor` in `modules`."""
    for module in modules:
        for decl, obj in declarations(module):
            where = getattr(module, "__file__", module.__name__)
            fixture = fixture_name(obj)
            if decl.name in registry:
                raise CompressorError(f"{decl.name}: declared in {where}, but a compressor of that name is "
                                      "already registered")
            if fixture is not None:
                stand_in = FixtureCompressor(decl.name, fixture, dict(decl.gates), decl.description)
                registry.register(decl.name, lambda _p, c=stand_in: c, (None,), decl.description)
            else:
                registry.add(as_compressor(decl.name, obj, decl.gates, f"{where}: {decl.name}"))


class Choice(str):
    """One compressor a test runs: its name, as a plain string, carrying the registry it comes from.

    Being a `str`, it is what pytest-benchmark writes into saved runs as the test's parameter (a plain
    name, no object repr and no paths), and what `--benchmark-group-by param:nerf_compressor` groups by.
    Equality (which pytest's fixture cache uses) also compares the registry's scope, so same-named
    compressors from different conftests stay apart."""

    scope: str
    registry: Registry

    def __new__(cls, name: str, scope: str, registry: Registry) -> "Choice":
        self = super().__new__(cls, name)
        self.scope = scope
        self.registry = registry
        return self

    @property
    def name(self) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Choice):
            return str.__eq__(self, other) and self.scope == other.scope
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__

    def __repr__(self) -> str:
        return str.__repr__(self)

    def __reduce__(self) -> tuple:  # pickled (pytest-xdist, copies) as the plain name
        return (str, (str(self),))

    def build(self, request: pytest.FixtureRequest) -> Compressor:
        comp = self.registry.get(self.name)
        if isinstance(comp, FixtureCompressor):
            value = request.getfixturevalue(comp.fixture)
            comp = as_compressor(self.name, value, comp.gates, f"fixture {comp.fixture!r}")
        return comp


class Registries:
    """Per-session: the base registry (built once) and one registry per set of applicable conftests."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._base: Registry | None = None
        self._scoped: dict[str, Registry] = {}
        self._built: dict[Choice, Compressor] = {}
        self._names: dict[int, str] = {}

    def base(self) -> Registry:
        if self._base is None:
            self._base = base_registry()
        return self._base

    def for_path(self, path: Path | None, hook: Any) -> tuple[str, Registry]:
        """(scope key, registry) for tests at `path`, calling `hook` (the path's hook proxy)."""
        modules = applicable_modules(self.config, path)
        key = "|".join(getattr(m, "__file__", None) or m.__name__ for m in modules)
        if key not in self._scoped:
            registry = copy.deepcopy(self.base())
            hook.pytest_nerfcompress_register(registry=registry, config=self.config)
            add_declared(registry, modules)
            self._scoped[key] = registry
        return key, self._scoped[key]

    def build(self, choice: Choice, request: pytest.FixtureRequest) -> Compressor:
        """The compressor of `choice`, built once per session (so its compressed model is too)."""
        if choice not in self._built:
            comp = choice.build(request)
            self._built[choice] = comp
            self._names[id(comp)] = choice.name
        return self._built[choice]

    def name_of(self, compressor: Compressor) -> str:
        """The name a built compressor was selected by (e.g. 'prune:0.3'), which the test id shows."""
        return self._names.get(id(compressor), getattr(compressor, "name", "compressor"))

    def choices(self, path: Path | None, hook: Any, patterns: Iterable[str]) -> list[Choice]:
        """The selected compressors (all registered ones when `patterns` is empty)."""
        key, registry = self.for_path(path, hook)
        patterns = list(patterns)
        names = registry.select(patterns) if patterns else registry.available()
        return [Choice(name, key, registry) for name in names]
