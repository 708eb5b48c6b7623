"""The compressor interface and the registry of compressors by name.

A compressor takes a float ModelPair and calibration rays (from training views) and returns a ModelPair
that renders through the same renderer: its networks map fp32 encoded inputs (N, C) to fp32 raw
outputs (N, 4). A compressor declares its parameters (`nerf_eval.compress.params.Param`); the registry
keeps factories by base name with those declarations, parses a name such as `prune-activation:0.3:global`
once into a typed spec for the factory, and lists concrete names for "run them all".
"""

from __future__ import annotations

import fnmatch
import io
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, runtime_checkable

import torch
from torch import nn

from nerf_eval.compress.params import CompressorSpec, Param, PipelineSpec, Spec, parse_spec, parse_stage
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair
from nerf_eval.render import OCCUPANCY_KEY, PROPOSAL_KEY, SAMPLES_KEY, Rays


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


Factory = Callable[[CompressorSpec], Compressor]  # typed, parsed spec -> compressor named str(spec)
SEARCH_ROLES = ("", "prune", "precision", "mixed", "accelerator")  # where autocompress may use a compressor


@dataclass
class Registration:
    """A registered compressor: its factory, declared parameters, the concrete names `available()` lists,
    and where autocompress may use it (`search`: one of SEARCH_ROLES, '' for nowhere)."""

    factory: Factory
    params: tuple[Param, ...] = ()
    listed: tuple[CompressorSpec, ...] = ()
    description: str = ""
    search: str = ""
    origin: str = ""  # the entry point it came from, '' for a registration in code


class Registry:
    """Compressors by base name. `register` adds a factory with its declared parameters; `parse` turns a
    name or composition into a typed `CompressorSpec`/`PipelineSpec` once; `get` builds it.

    A composition's stages are built from this registry and joined by `Registry.compose`, which
    `nerf_eval.compress.pipeline` installs when it is imported (the package imports it), so this module
    does not import it back. A registry made with `entry_points=True` (the global `REGISTRY`) also holds
    the compressors installed packages expose in the `nerfcompress.compressors` entry-point group, loaded
    once, on first use (`nerf_eval.compress.discovery`)."""

    compose: Callable[[list[Compressor]], Compressor] | None = None

    def __init__(self, entry_points: bool = False) -> None:
        self._entries: dict[str, Registration] = {}
        self._discover = entry_points
        self._discovered: set[str] = set()  # base names that came from entry points
        self._loading = False

    # ---------------------------------------------------------------- adding
    def register(self, name: str, factory: Factory, defaults: Iterable[str | None] = (None,),
                 description: str = "", replace: bool = False, params: Iterable[Param] = (),
                 search: str = "") -> None:
        """Add `factory` under the base `name`. `params` declares its parameters; `defaults` are the
        parameter texts of the names `available()` lists (None: the bare name), checked here."""
        if not name or any(ch in name for ch in ":+=") or name.strip() != name:
            raise CompressorError(f"{name!r}: compressor base names cannot be empty or contain ':', '+' or '='")
        if name in self._entries and not replace:
            raise CompressorError(f"{name}: a compressor of that name is already registered")
        if search not in SEARCH_ROLES:
            raise CompressorError(f"{name}: search role {search!r} is not one of {', '.join(SEARCH_ROLES[1:])}")
        params = tuple(params)
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise CompressorError(f"{name}: parameter names must be distinct, got {', '.join(names)}")
        lookup = {name: params}.__getitem__
        listed = tuple(parse_stage(name if d is None else f"{name}:{d}", lookup) for d in defaults)
        self._entries[name] = Registration(factory, params, listed, description, search,
                                           "entry point" if self._loading else "")
        if self._loading:
            self._discovered.add(name)

    def add(self, compressor: Compressor, replace: bool = False) -> Compressor:
        """Register a ready compressor object under its own name (no parameter)."""
        self.register(compressor.name, lambda _spec, c=compressor: c, (None,),
                      getattr(compressor, "description", ""), replace)
        return compressor

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._discovered.discard(name)

    # ---------------------------------------------------------------- entry points
    def _ensure_discovered(self) -> None:
        if self._discover and not self._loading:
            self.load_entry_points()

    def load_entry_points(self) -> None:
        """Register, now, what the installed packages' `nerfcompress.compressors` entry points expose
        (`nerf_eval.compress.discovery`); on failure nothing of them stays and the next use tries again."""
        from nerf_eval.compress.discovery import load_entry_points  # it imports this module

        self.forget_entry_points(discover_again=False)
        self._loading = True
        try:
            load_entry_points(self)
        except CompressorError:
            self.forget_entry_points()
            raise
        finally:
            self._loading = False

    def forget_entry_points(self, discover_again: bool = True) -> None:
        """Drop what entry points registered; with `discover_again`, look them up afresh on next use."""
        for name in self._discovered:
            self._entries.pop(name, None)
        self._discovered = set()
        self._discover = discover_again

    def copy(self, entry_points: bool = True) -> "Registry":
        """An independent copy (registrations are shared, the tables are not); without `entry_points`
        only what was registered in code, with no discovery of its own."""
        if entry_points:
            self._ensure_discovered()
        out = Registry()
        out._entries = {k: v for k, v in self._entries.items() if entry_points or k not in self._discovered}
        out._discovered = set(self._discovered) if entry_points else set()
        return out

    def __deepcopy__(self, memo: dict) -> "Registry":
        return self.copy()

    # ---------------------------------------------------------------- reading
    def params_of(self, base: str) -> tuple[Param, ...]:
        """The declared parameters of `base` (a one-line CompressorError for an unknown name)."""
        self._ensure_discovered()
        if base not in self._entries:
            raise CompressorError(f"{base}: unknown compressor; known: {', '.join(sorted(self._entries))}")
        return self._entries[base].params

    def registration(self, base: str) -> Registration:
        self.params_of(base)
        return self._entries[base]

    def spec(self, base: str, **values: Any) -> CompressorSpec:
        """The spec of `base` with `values` given (typed values, checked against the declarations): how
        code builds a name, e.g. `spec("prune-activation", ratio=0.3)` prints as `prune-activation:0.3`."""
        return CompressorSpec(base, (), self.params_of(base)).replace(**values)

    def parse(self, spec: str | Spec) -> Spec:
        """The typed form of a name or composition, parsed once (a one-line CompressorError naming the
        spec and the bad parameter, with the valid ones, when it is malformed)."""
        if isinstance(spec, (CompressorSpec, PipelineSpec)):
            return spec
        return parse_spec(spec, self.params_of)

    def __contains__(self, spec: object) -> bool:
        """Whether `spec` (a base name, a full name or a composition) names something registered here."""
        self._ensure_discovered()
        if spec in self._entries:
            return True
        try:
            self.parse(str(spec))
        except CompressorError:
            return False
        return True

    def get(self, spec: str | Spec) -> Compressor:
        parsed = self.parse(spec)
        if isinstance(parsed, PipelineSpec):
            if Registry.compose is None:
                raise CompressorError(f"{parsed}: compositions need nerf_eval.compress.pipeline imported")
            return Registry.compose([self._build(stage) for stage in parsed.stages])
        return self._build(parsed)

    def _build(self, spec: CompressorSpec) -> Compressor:
        comp = self.registration(spec.base).factory(spec)
        if not isinstance(comp, Compressor):
            raise CompressorError(f"{spec}: factory returned {type(comp).__name__}, not a Compressor")
        return comp

    def search(self, role: str) -> list[str]:
        """Base names that declare the autocompress role `role`, in registration order."""
        self._ensure_discovered()
        return [base for base, reg in self._entries.items() if reg.search == role]

    def search_points(self, base: str) -> list[str]:
        """Canonical names of `base` at every combination of its parameters' declared search values, the
        defaults first (a value equal to its default is not written): `samples` declares fine samples
        64, 48, 32 and coarse 0 (as the settings say), 32, so `samples`, `samples:48`, ... `samples:32:coarse=32`.
        Just `base` when it declares none."""
        params = self.params_of(base)
        axes = [p for p in params if p.search]
        names = []
        for combo in itertools.product(*(p.search for p in axes)):
            values = {p.name: v for p, v in zip(axes, combo) if v != p.default}
            name = str(self.spec(base, **values))
            if name not in names:
                names.append(name)
        return names or [base]

    def available(self) -> list[str]:
        """Concrete names (with default parameters) in registration order."""
        self._ensure_discovered()
        return [str(s) for reg in self._entries.values() for s in reg.listed]

    def describe(self) -> dict[str, str]:
        self._ensure_discovered()
        return {base: reg.description for base, reg in self._entries.items()}

    def select(self, patterns: list[str]) -> list[str]:
        """Canonical names matching any of `patterns` (names with parameters, or globs over `available()`).

        A pattern that matches nothing is an error (a typo must not silently run nothing)."""
        names = self.available()
        out: list[str] = []
        for pat in patterns:
            if any(ch in pat for ch in "*?["):
                hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
                if not hits:
                    raise CompressorError(f"{pat}: no registered compressor matches; known: {', '.join(names)}")
            else:
                self.get(pat)  # raises for unknown names and bad parameters
                hits = [str(self.parse(pat))]
            out.extend(h for h in hits if h not in out)
        return out


REGISTRY = Registry(entry_points=True)


def register(name: str, factory: Factory | None = None, defaults: Iterable[str | None] = (None,),
             description: str = "", replace: bool = False, params: Iterable[Param] = (), search: str = ""):
    """Register a compressor factory in the global registry; usable as a decorator:

    >>> @register("toy", params=[Param("strength", float, 0.5, low=0, high=1, positional=True)])
    ... def toy(spec: CompressorSpec) -> Compressor: ...
    """
    params = tuple(params)
    if factory is None:
        def deco(f: Factory) -> Factory:
            REGISTRY.register(name, f, defaults, description, replace, params, search)
            return f
        return deco
    REGISTRY.register(name, factory, defaults, description, replace, params, search)
    return factory


def get_compressor(spec: str | Spec) -> Compressor:
    return REGISTRY.get(spec)


def parse_compressor(spec: str | Spec) -> Spec:
    """The typed form of a compressor name or composition in the global registry (see `Registry.parse`)."""
    return REGISTRY.parse(spec)


def available() -> list[str]:
    return REGISTRY.available()


def check_calibration(calibration: Rays, who: str) -> None:
    """Refuse empty or non-finite calibration rays with one line naming the compressor."""
    if calibration is None or len(calibration) == 0:
        raise CompressorError(f"{who}: empty calibration set (need at least one ray)")
    for name in ("origins", "directions", "viewdirs", "near", "far"):
        if not torch.isfinite(getattr(calibration, name)).all():
            raise CompressorError(f"{who}: calibration rays contain NaN or inf in {name}")


# pair.meta entries saved with a pair (nerf_eval.compress.saved) and so counted in its size: objects with
# `to_state()` (an occupancy grid, sample caps, a baked coarse pass).
SAVED_META = (OCCUPANCY_KEY, SAMPLES_KEY, PROPOSAL_KEY)


def serialized_size(module: nn.Module | ModelPair) -> int:
    """Bytes that `torch.save` writes for the state of a network or of a whole pair (scales included,
    and a pair's occupancy grid, sample caps and baked coarse pass, which are saved with it)."""
    nets = module.networks() if isinstance(module, ModelPair) else {"net": module}
    state = {k: v.state_dict() for k, v in nets.items()}
    extras = module.meta if isinstance(module, ModelPair) else {}
    for key in SAVED_META:
        if extras.get(key) is not None:
            state[key] = extras[key].to_state()
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getbuffer().nbytes
