"""Quality gates as data: metric directions, threshold expressions and the checks that apply them.

Three kinds of thresholds, all on plain metric dicts (see record.py):
- relative to the fp32 model in the same run: `psnr_drop=0.3`, `worst_psnr_drop=0.5`, `ssim_drop=0.01`,
  `size_ratio=0.5`, `min_speedup=1.5`;
- absolute limits: `psnr>=30`, `size<=2MB`, `latency<=50ms`;
- regression against a saved run, in pytest-benchmark's `--benchmark-compare-fail` style:
  `psnr:0.1` (dB), `ssim:0.005`, `size:2%`, each metric judged in its own bad direction.
Every failure is one line that starts with the compressor's name.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

UNITS = {
    "dB": {"": 1.0, "db": 1.0},
    "B": {"": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2.0 ** 10, "mib": 2.0 ** 20, "gib": 2.0 ** 30},
    "s": {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6},
    "x": {"": 1.0, "x": 1.0},
    "": {"": 1.0},
}


@dataclass(frozen=True)
class Metric:
    """A measured quantity: where it lives in a record, how it reads, and which way is better."""

    name: str
    key: str
    label: str
    higher_is_better: bool
    unit: str = ""

    def show(self, value: float) -> str:
        """The value with its unit, as the messages and the summary table print it."""
        if value is None or not math.isfinite(value):
            return str(value)
        if self.unit == "dB":
            return f"{value:.2f} dB"
        if self.unit == "B":
            return f"{value / 1e6:.2f} MB" if abs(value) >= 1e5 else f"{value / 1e3:.1f} KB"
        if self.unit == "s":
            return f"{value * 1e3:.1f} ms" if abs(value) < 10 else f"{value:.2f} s"
        if self.unit == "x":
            return f"{value:.2f}x"
        return f"{value:.3f}"

    def amount(self, value: float) -> str:
        """A difference or tolerance: bare number for dB (as in '(allowed 0.30)'), else with its unit."""
        return f"{value:.2f}" if self.unit == "dB" else self.show(value)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("psnr", "psnr", "PSNR", True, "dB"),
    Metric("worst_psnr", "worst_psnr", "worst-view PSNR", True, "dB"),
    Metric("ssim", "ssim", "SSIM", True),
    Metric("flip", "flip", "FLIP", False),
    Metric("depth_error", "depth_error", "depth error", False),
    Metric("size", "size_bytes", "size", False, "B"),
    Metric("latency", "latency_s", "latency", False, "s"),
    Metric("speedup", "speedup", "paired speed-up", True, "x"),
)}
ALIASES = {"worst": "worst_psnr", "depth": "depth_error", "size_bytes": "size", "latency_s": "latency"}


class GateError(ValueError):
    """A threshold expression or gate keyword that cannot be understood."""


def metric(name: str) -> Metric:
    """The metric called `name` (or an alias such as 'worst' or 'depth')."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in METRICS:
        raise GateError(f"{name!r}: unknown metric; known: {', '.join(METRICS)}")
    return METRICS[key]


def parse_quantity(text: str, m: Metric, where: str) -> float:
    """'2MB' -> 2e6, '50ms' -> 0.05, '30' -> 30.0 (units allowed for the metric's kind only)."""
    match = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match:
        raise GateError(f"{where}: {text!r} is not a number")
    units = UNITS[m.unit]
    unit = match.group(2).lower()
    if unit not in units:
        raise GateError(f"{where}: unit {match.group(2)!r} does not fit {m.label} "
                        f"(use {', '.join(u for u in units if u) or 'a plain number'})")
    value = float(match.group(1)) * units[unit]
    if not math.isfinite(value):
        raise GateError(f"{where}: {text!r} is not a finite number")
    return value


OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Limit:
    """An absolute limit such as `psnr>=30`."""

    metric: Metric
    op: str
    value: float
    text: str

    @property
    def slot(self) -> tuple[str, str]:
        """Limits in the same slot (metric, lower/upper bound) override each other."""
        return self.metric.name, "min" if self.op.startswith(">") else "max"


def parse_limit(text: str) -> Limit:
    match = re.fullmatch(r"\s*([A-Za-z_]+)\s*(>=|<=|>|<)\s*(.+)", text)
    if not match:
        raise GateError(f"{text!r}: expected an absolute limit like 'psnr>=30' or 'size<=2MB'")
    m = metric(match.group(1))
    return Limit(m, match.group(2), parse_quantity(match.group(3), m, text), text.strip())


# relative gate keyword: (metric, how the compressed value is set against fp32)
RELATIVE: dict[str, tuple[str, str]] = {
    "psnr_drop": ("psnr", "drop"),
    "worst_psnr_drop": ("worst_psnr", "drop"),
    "ssim_drop": ("ssim", "drop"),
    "size_ratio": ("size", "ratio"),
    "min_speedup": ("latency", "speedup"),
}
RELATIVE_ALIASES = {"worst_drop": "worst_psnr_drop"}


@dataclass
class Outcome:
    """What a set of checks found: failures fail the test, warnings are reported but pass."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def extend(self, other: "Outcome") -> "Outcome":
        self.failures += other.failures
        self.warnings += other.warnings
        self.checked += other.checked
        return self

    @property
    def passed(self) -> bool:
        return not self.failures


def _value(record: Mapping, m: Metric) -> float | None:
    """The metric's number in `record`; None when it holds none (absent, or a saved run's field of another
    type, which is then reported as not compared rather than raising)."""
    v = record.get(m.key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass
class GateSpec:
    """Relative thresholds by keyword and absolute limits by slot; `merged` lets later sources win."""

    relative: dict[str, float] = field(default_factory=dict)
    limits: dict[tuple[str, str], Limit] = field(default_factory=dict)

    @classmethod
    def parse(cls, items: Iterable[str] = (), keywords: Mapping[str, float] | None = None,
              where: str = "gate") -> "GateSpec":
        """From expressions ('psnr_drop=0.3' or 'psnr>=30') and keyword thresholds."""
        spec = cls()
        pairs = dict(keywords or {})
        for item in items:
            text = str(item).strip()
            match = re.fullmatch(r"([A-Za-z_]+)\s*=\s*([^<>=].*)", text)
            if match:
                pairs[match.group(1)] = match.group(2)
            else:
                try:
                    limit = parse_limit(text)
                except GateError as e:
                    raise GateError(f"{where}: {e}") from None
                spec.limits[limit.slot] = limit
        for key, value in pairs.items():
            key = RELATIVE_ALIASES.get(key, key)
            if key not in RELATIVE:
                raise GateError(f"{where}: unknown gate {key!r}; known: {', '.join(RELATIVE)} "
                                "or absolute limits like 'psnr>=30'")
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise GateError(f"{where}: gate {key}={value!r} is not a number") from None
            if not math.isfinite(x) or x < 0:
                raise GateError(f"{where}: gate {key}={value!r} must be a finite number >= 0")
            spec.relative[key] = x
        return spec

    def merged(self, later: "GateSpec") -> "GateSpec":
        return GateSpec({**self.relative, **later.relative}, {**self.limits, **later.limits})

    def __bool__(self) -> bool:
        return bool(self.relative or self.limits)

    def check(self, name: str, record: Mapping, baseline: Mapping | None,
              latency_note: str | None = None) -> Outcome:
        """Apply every threshold to `record` (relative ones against `baseline`, the fp32 record).

        A threshold whose metric was not measured fails (no silent pass), except a speed-up when
        `latency_note` says why latency could not be measured (then it warns)."""
        out = Outcome()
        for key, allowed in self.relative.items():
            m = METRICS[RELATIVE[key][0]]
            out.checked.append(f"{key}={allowed:g}")
            v = _value(record, m)
            b = _value(baseline, m) if baseline is not None else None
            if v is None or b is None:
                if m.name == "latency" and latency_note:
                    out.warnings.append(f"{name}: {key} not checked: {latency_note}")
                else:
                    missing = "fp32" if v is not None else name
                    out.failures.append(f"{name}: {m.label} of {missing} was not measured; cannot check {key}")
                continue
            message = _relative_failure(name, key, m, v, b, allowed, record.get("speedup"))
            if message:
                out.failures.append(message)
        for limit in self.limits.values():
            out.checked.append(limit.text)
            v = _value(record, limit.metric)
            if v is None:
                out.failures.append(f"{name}: {limit.metric.label} was not measured; cannot check '{limit.text}'")
            elif not (math.isfinite(v) and OPS[limit.op](v, limit.value)):
                out.failures.append(f"{name}: {limit.metric.label} {limit.metric.show(v)} is not "
                                    f"{limit.op} {limit.metric.show(limit.value)}")
        return out


def _relative_failure(name: str, key: str, m: Metric, v: float, b: float, allowed: float,
                      paired_speedup: float | None = None) -> str | None:
    """One line when `v` (the record's value of metric `m`) breaks threshold `key` against fp32's `b`.
    A speed-up is the paired one (median of per-round ratios) where the record has it, else b / v."""
    if not math.isfinite(v):
        return f"{name}: {m.label} is {v} (fp32 {m.show(b)}); the model renders non-finite values"
    kind = RELATIVE[key][1]
    if kind == "drop":
        drop = b - v
        if drop > allowed:
            return (f"{name}: {m.label} {m.show(v)} is {m.show(drop)} below fp32 {m.show(b)} "
                    f"(allowed {m.amount(allowed)})")
    elif kind == "ratio":
        ratio = v / b if b else math.inf
        if ratio > allowed:
            return f"{name}: {m.label} {m.show(v)} is {ratio:.2f}x fp32 {m.show(b)} (allowed {allowed:.2f}x)"
    elif kind == "speedup":
        speedup = paired_speedup if paired_speedup is not None else (b / v if v > 0 else math.inf)
        if speedup < allowed:
            return (f"{name}: speed-up {speedup:.2f}x over fp32 is below the required {allowed:.2f}x "
                    f"(latency {m.show(v)} vs fp32 {m.show(b)})")
    return None


@dataclass(frozen=True)
class Tolerance:
    """How much worse than the saved run a metric may get: absolute (metric units) or in percent."""

    metric: Metric
    amount: float
    percent: bool
    text: str
    strict: bool = True  # False: a regression only warns

    def allowed(self, saved: float) -> float:
        return abs(saved) * self.amount / 100.0 if self.percent else self.amount

    def show(self) -> str:
        return f"{self.amount:g}%" if self.percent else self.metric.amount(self.amount)


def parse_tolerance(text: str) -> Tolerance:
    """'psnr:0.1' (dB), 'ssim:0.005', 'size:2%', 'latency:20%', 'size:0'."""
    name, sep, amount = str(text).partition(":")
    if not sep or not amount.strip():
        raise GateError(f"{text!r}: expected METRIC:AMOUNT such as 'psnr:0.1' or 'size:2%'")
    m = metric(name)
    amount = amount.strip()
    percent = amount.endswith("%")
    if percent:
        if not re.fullmatch(r"(?:\d+\.?\d*|\.\d+)%", amount) or not math.isfinite(float(amount[:-1])):
            raise GateError(f"{text!r}: {amount!r} is not a percentage")
        value = float(amount[:-1])
    else:
        value = parse_quantity(amount, m, text)
    if value < 0:
        raise GateError(f"{text!r}: a tolerance cannot be negative")
    return Tolerance(m, value, percent, str(text).strip())


DEFAULT_TOLERANCES = ("psnr:0.1", "size:0", "latency:20%", "speedup:20%")
# Timings drift between machines and loads: by default a saved run's latency and speed-up only warn. The
# paired speed-up (a ratio to fp32 timed interleaved in one run) drifts far less than the absolute latency,
# so asking for it explicitly (`speedup:10%`) makes it a failing check on a machine that stays the same.
WARN_ONLY = frozenset({"latency", "speedup"})


def tolerances(exprs: Iterable[str] = (), where: str = "tolerance") -> dict[str, Tolerance]:
    """The defaults (psnr:0.1, size:0, and warnings for latency:20% and speedup:20%) with the given
    expressions replacing them per metric; a given expression fails the check, whatever its metric.
    A malformed expression is a GateError starting with `where` (the option that gave it)."""
    out = {t.metric.name: dataclasses.replace(t, strict=t.metric.name not in WARN_ONLY)
           for t in map(parse_tolerance, DEFAULT_TOLERANCES)}
    for text in exprs:
        try:
            given = parse_tolerance(text)
        except GateError as e:
            raise GateError(f"{where}: {e}") from None
        out[given.metric.name] = given
    return out


def check_saved(name: str, record: Mapping, saved: Mapping, source: str,
                checks: Mapping[str, Tolerance]) -> Outcome:
    """Compare `record` with the same benchmark's metrics in a saved run (`source` names the file)."""
    out = Outcome()
    for tol in checks.values():
        m = tol.metric
        now, before = _value(record, m), _value(saved, m)
        if before is None or now is None:
            if tol.strict and now is not None:
                out.warnings.append(f"{name}: saved run {source} has no {m.label}; not compared")
            continue
        out.checked.append(f"saved:{tol.text}")
        worse = (before - now) if m.higher_is_better else (now - before)
        if worse > tol.allowed(before) or not math.isfinite(now):
            way = "below" if m.higher_is_better else "above"
            pct = f" ({100.0 * worse / abs(before):+.1f}%)" if tol.percent and before else ""
            line = (f"{name}: {m.label} {m.show(now)} is {m.show(worse)}{pct} {way} saved run {source} "
                    f"{m.show(before)} (allowed {tol.show()})")
            (out.failures if tol.strict else out.warnings).append(line)
    return out
