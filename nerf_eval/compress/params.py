"""Declared compressor parameters and the parsed, typed form of a compressor name.

A compressor declares its parameters (`Param`: name, type, range or choices, default, whether it is
written positionally); the registry parses a name such as `prune-activation:0.3:global:round=1` or
`prune-activation-obs:0.3+int8-ptq-both` once, here, into a `CompressorSpec` (one stage: base name and
typed values) or a `PipelineSpec` (stages joined by `+`). Everything downstream reads values from the
spec and prints it back with `str(spec)`, the canonical name, which saved runs and reports are keyed by:
parameters that were given, in declaration order, positional ones first without a key, so
`parse(str(spec)) == spec`. A parameter left out is not printed (`mixed` and `mixed:40` are two names of
the same compressor, each kept as written).

The grammar: `BASE[:VALUE][:KEY=VALUE][:FLAG]...`, where a bare token is, in turn, the name of a boolean
parameter (`:views`), a value of a parameter that may be written alone (`:global` for `scope=global`), or
the next positional parameter's value. `pipeline:a+b` is the composition `a+b`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from nerf_eval.errors import CompressorError

SEPARATOR = "+"  # joins the stages of a composition
PIPELINE = "pipeline"  # `pipeline:a+b` names the composition a+b


def format_value(value: Any) -> str:
    """The shortest text that reads back as `value` (0.3 -> '0.3', 40.0 -> '40', True -> 'true')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


@dataclass(frozen=True)
class Param:
    """One declared parameter of a compressor.

    `help` is a noun phrase naming the value ("pruning ratio"); error messages use it. `bounds` says which
    ends of [low, high] are included ('[]', '[)', '(]', '()'). `positional`: may be written as a bare
    value in declaration order (it may always be written `name=value` too). `bare`: a choice that may be
    written alone (`:global` sets scope). A `bool` parameter is written as its bare name (`:views`).
    `search`: the values autocompress tries on this axis unless told otherwise."""

    name: str
    type: type = float
    default: Any = None
    low: float | None = None
    high: float | None = None
    bounds: str = "[]"
    choices: tuple = ()
    positional: bool = False
    bare: bool = False
    required: bool = False
    help: str = ""
    example: str = ""
    search: tuple = ()

    def __post_init__(self) -> None:
        if self.type not in (int, float, str, bool):
            raise CompressorError(f"parameter {self.name}: type must be int, float, str or bool, not {self.type}")
        if not self.name or any(ch in self.name for ch in ":=+"):
            raise CompressorError(f"parameter {self.name!r}: names cannot be empty or contain ':', '=' or '+'")
        if self.bounds not in ("[]", "[)", "(]", "()"):
            raise CompressorError(f"parameter {self.name}: bounds must be one of [], [), (], (), not {self.bounds}")

    @property
    def what(self) -> str:
        return self.help or self.name

    def usage(self) -> str:
        """How the parameter is written: 'RATIO', 'global|layer', 'round=N', 'views'."""
        if self.type is bool:
            return self.name
        if self.bare and self.choices:
            return "|".join(map(str, self.choices))
        value = "|".join(map(str, self.choices)) if self.choices else \
            {int: "N", float: "X", str: "TEXT"}[self.type]
        return self.name.upper() if self.positional and not self.choices else f"{self.name}={value}"

    def range_text(self) -> str:
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return f"in {self.bounds[0]}{format_value(lo)}, {format_value(hi)}{self.bounds[1]}"
        if lo is not None:
            return f"{'>=' if self.bounds[0] == '[' else '>'} {format_value(lo)}"
        if hi is not None:
            return f"{'<=' if self.bounds[1] == ']' else '<'} {format_value(hi)}"
        return ""

    def check(self, value: Any, who: str) -> Any:
        """`value` converted to the declared type and checked against the range or choices."""
        if self.type is bool:
            if not isinstance(value, bool):
                raise CompressorError(f"{who}: {self.what} must be true or false, got {value!r}")
            return value
        if self.type in (int, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if self.type is int and ok and float(value) != int(value):
                ok = False
            if not ok:
                raise CompressorError(f"{who}: {self.what} must be {'an integer' if self.type is int else 'a number'}"
                                      f", got {value!r}")
            value = self.type(value)
            lo, hi = self.low, self.high
            bad = isinstance(value, float) and not math.isfinite(value)
            bad = bad or (lo is not None and (value < lo if self.bounds[0] == "[" else value <= lo))
            bad = bad or (hi is not None and (value > hi if self.bounds[1] == "]" else value >= hi))
            if bad:
                raise CompressorError(f"{who}: {self.what} must be {self.range_text()}, got {format_value(value)}")
        if self.choices and value not in self.choices:
            raise CompressorError(f"{who}: unknown {self.what} {value!r}; choose from "
                                  f"{', '.join(map(str, self.choices))}")
        return value

    def convert(self, text: str) -> Any:
        """The value written as `text` in the declared type (ValueError when it is not one)."""
        if self.type is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        return self.type(text)

    def kind(self) -> str:
        """What a value must be, for messages: 'a number in [0, 1)', 'one of none, mean, lsq'."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        base = {int: "an integer", float: "a number", str: "text", bool: "true or false"}[self.type]
        return f"{base} {self.range_text()}".strip()

    def parse(self, text: str, who: str) -> Any:
        """The typed, checked value written as `text` (one-line CompressorError naming `who` otherwise)."""
        try:
            value = self.convert(text)
        except ValueError:
            raise CompressorError(f"{who}: {self.what} {text!r} is not {self.kind()}") from None
        return self.check(value, who)

    def token(self, value: Any) -> str:
        """How a given value is printed in a canonical name."""
        if self.type is bool:
            return self.name if value else f"{self.name}=false"
        if self.positional or (self.bare and self.choices):
            return format_value(value)
        return f"{self.name}={format_value(value)}"


def usage(params: Iterable[Param]) -> str:
    """The parameters as written, for error messages: 'RATIO, global|layer, round=N, views'."""
    return ", ".join(p.usage() for p in params) or "none"


@dataclass(frozen=True)
class CompressorSpec:
    """One parsed stage: a registered base name and the parameters given, typed, in declaration order.

    `values` adds the declared defaults; `spec["ratio"]` reads one; `str(spec)` is the canonical name."""

    base: str
    given: tuple[tuple[str, Any], ...] = ()
    params: tuple[Param, ...] = field(default=(), compare=False, repr=False, hash=False)

    @property
    def values(self) -> dict[str, Any]:
        out = {p.name: p.default for p in self.params}
        out.update(self.given)
        return out

    def __getitem__(self, name: str) -> Any:
        values = self.values
        if name not in values:
            raise KeyError(f"{self.base} has no parameter {name!r}; parameters: {usage(self.params)}")
        return values[name]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise CompressorError(f"{self.base}: no parameter {name!r}; parameters: {usage(self.params)}")

    def replace(self, **values: Any) -> "CompressorSpec":
        """This spec with some parameters given (checked), or dropped where the value is None."""
        given = dict(self.given)
        for name, value in values.items():
            if value is None:
                given.pop(name, None)
            else:
                given[name] = self.param(name).check(value, f"{self}")
        order = [p.name for p in self.params]
        return replace(self, given=tuple((n, given[n]) for n in order if n in given))

    @property
    def stages(self) -> tuple["CompressorSpec", ...]:
        return (self,)

    def __str__(self) -> str:
        tokens = {p.name: p for p in self.params}
        return ":".join([self.base, *(tokens[n].token(v) for n, v in self.given)])


@dataclass(frozen=True)
class PipelineSpec:
    """Stages run in order (`a:p+b:q`); `str` joins the canonical stage names with '+'."""

    stages: tuple[CompressorSpec, ...]

    def __str__(self) -> str:
        return SEPARATOR.join(map(str, self.stages))


Spec = CompressorSpec | PipelineSpec


def parse_stage(text: str, params_of: Callable[[str], tuple[Param, ...]]) -> CompressorSpec:
    """Parse one stage `BASE[:...]`; `params_of(base)` gives the declared parameters (raising for an
    unknown base)."""
    base, *tokens = text.split(":")
    params = params_of(base)
    by_name = {p.name: p for p in params}
    given: dict[str, Any] = {}
    positional = [p for p in params if p.positional]

    def fail(problem: str) -> CompressorError:
        return CompressorError(f"{text}: {problem}; parameters: {usage(params)}")

    def put(p: Param, value: Any, token: str) -> None:
        if p.name in given:
            raise fail(f"{p.name} given twice ({token!r})")
        given[p.name] = value

    if not params and tokens:
        raise CompressorError(f"{text}: {base} takes no parameter")
    for token in tokens:
        key, eq, value = token.partition("=")
        if not token:
            raise fail("empty parameter")
        if eq:
            p = by_name.get(key)
            if p is None or not value:
                raise fail(f"unknown option {token!r}")
            try:
                typed = p.convert(value)
            except ValueError:
                raise fail(f"unknown option {token!r} ({p.name} takes {p.kind()})") from None
            put(p, p.check(typed, text), token)
            continue
        p = by_name.get(token)
        if p is not None and p.type is bool:
            put(p, True, token)
            continue
        p = next((q for q in params if q.bare and token in map(str, q.choices)), None)
        if p is not None:
            put(p, p.parse(token, text), token)
            continue
        p = next((q for q in positional if q.name not in given), None)
        if p is None:
            raise fail(f"unknown option {token!r}")
        put(p, p.parse(token, text), token)
    for p in params:
        if p.required and p.name not in given:
            example = f", e.g. {base}:{p.example}" if p.example else ""
            raise CompressorError(f"{text}: give the {p.what}{example}")
    return CompressorSpec(base, tuple((p.name, given[p.name]) for p in params if p.name in given), params)


def parse_spec(text: str, params_of: Callable[[str], tuple[Param, ...]]) -> Spec:
    """Parse a name or composition once: `a:p+b:q` (or `pipeline:a+b`) is a PipelineSpec of its stages, a
    single stage (also `pipeline:a`) a CompressorSpec."""
    text = str(text).strip()
    if not text.isprintable():  # a name echoed in a one-line error must stay on one line
        raise CompressorError(f"{text!r}: compressor names hold no line breaks or other control characters")
    chain = text[len(PIPELINE) + 1:] if text.startswith(PIPELINE + ":") else text
    parts = [p.strip() for p in chain.split(SEPARATOR)]
    if not chain or not all(parts) or text == PIPELINE:
        raise CompressorError(f"{text or PIPELINE + ':'}: a pipeline is compressor names joined by '+', e.g. "
                              "prune-activation:0.3+int8-ptq-both")
    nested = [p for p in parts if p == PIPELINE or p.startswith(PIPELINE + ":")]
    if nested:
        raise CompressorError(f"{text}: a pipeline stage cannot itself be a pipeline ({nested[0]})")
    stages = tuple(parse_stage(p, params_of) for p in parts)
    return stages[0] if len(stages) == 1 else PipelineSpec(stages)
