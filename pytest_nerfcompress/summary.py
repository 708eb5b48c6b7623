"""The run's results per compressor, merged from test reports, as a terminal table and as JSON.

Fixtures put their results into each test's `user_properties` (kind: record, gate or error); the
reports reach `pytest_runtest_logreport` in a serial run and on the pytest-xdist controller alike, so
this one path serves both.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from nerf_eval.measure.gates import METRICS
from pytest_nerfcompress.properties import PROPERTY_KEY

COLUMNS = ("compressor", "PSNR", "ΔPSNR", "SSIM", "ꟻLIP", "worst view", "depth err", "size", "size ratio",
           "latency", "speed-up", "gates")


@dataclass
class Row:
    """Everything reported about one compressor on one target."""

    target: str
    name: str
    record: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    tests_failed: int = 0
    tests_xfailed: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """ERROR, FAIL, XFAIL (failed as declared: Target.known_failures), skip, warn, pass or n/a."""
        if self.errors:
            return "ERROR"
        if self.tests_failed:
            return "FAIL"
        if self.failures:
            return "XFAIL" if self.tests_xfailed else "FAIL"
        if self.skipped and not self.checked:
            return "skip"
        if self.warnings:
            return "warn"
        return "pass" if self.checked else "n/a"

    def to_dict(self) -> dict:
        return {"target": self.target, "name": self.name, "status": self.status, "record": self.record,
                "baseline": self.baseline, "failures": self.failures, "warnings": self.warnings,
                "errors": self.errors, "checked": self.checked}


def _add_unique(dest: list[str], items: list[str]) -> None:
    dest.extend(i for i in items if i not in dest)


class Summary:
    """Rows by (target, compressor), filled from test reports."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}
        self._seen: set[tuple[str, int]] = set()
        self._node_rows: dict[str, set[tuple[str, str]]] = {}
        self._failed_nodes: set[str] = set()
        self._xfailed_nodes: set[str] = set()

    def row(self, target: str, name: str) -> Row:
        return self.rows.setdefault((target, name), Row(target, name))

    def add_report(self, nodeid: str, outcome: str, user_properties: list, xfailed: bool = False) -> None:
        """Take the plugin's entries from one report (each entry once) and the report's outcome
        (`xfailed`: the test failed as an expected failure)."""
        for i, prop in enumerate(user_properties or ()):
            if not (isinstance(prop, (tuple, list)) and len(prop) == 2 and prop[0] == PROPERTY_KEY):
                continue
            if (nodeid, i) in self._seen:
                continue
            self._seen.add((nodeid, i))
            self._add_entry(nodeid, prop[1])
        if outcome == "failed" and nodeid not in self._failed_nodes:
            self._failed_nodes.add(nodeid)
            for key in self._node_rows.get(nodeid, ()):
                self.rows[key].tests_failed += 1
        if xfailed and nodeid not in self._xfailed_nodes:
            self._xfailed_nodes.add(nodeid)
            for key in self._node_rows.get(nodeid, ()):
                self.rows[key].tests_xfailed += 1

    def _add_entry(self, nodeid: str, entry: dict) -> None:
        row = self.row(entry.get("target", ""), entry.get("name", ""))
        self._node_rows.setdefault(nodeid, set()).add((row.target, row.name))
        kind = entry.get("kind")
        if kind == "record":
            row.record.update({k: v for k, v in (entry.get("record") or {}).items() if v is not None})
            row.baseline.update({k: v for k, v in (entry.get("baseline") or {}).items() if v is not None})
        elif kind == "gate":
            _add_unique(row.failures, entry.get("failures", []))
            _add_unique(row.warnings, entry.get("warnings", []))
            _add_unique(row.checked, entry.get("checked", []))
            _add_unique(row.skipped, entry.get("skipped", []))
        elif kind == "error":
            _add_unique(row.errors, [entry.get("message", "")])

    def table(self) -> list[str]:
        """Text lines of the summary table, one block per target, the fp32 reference first."""
        targets = sorted({t for t, _ in self.rows if t}) + [""]  # "": compressors that failed to build
        multi = len(targets) > 2
        lines: list[tuple[str, ...]] = [COLUMNS]
        for target in targets:
            rows = [r for (t, _), r in self.rows.items() if t == target]
            base = next((r.baseline for r in rows if r.baseline), {})
            label = (lambda n, t=target: f"{t}/{n}") if multi and target else (lambda n: n)
            if base:
                lines.append(_cells(label("fp32 (reference)"), base, base, ""))
            lines.extend(_cells(label(r.name), r.record, base, r.status) for r in rows)
        widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
        out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
               for line in lines]
        out.insert(1, "-" * len(out[0]))
        return out

    def messages(self) -> list[str]:
        """One line per error, failure and warning, by row (prefixed with the target when there are several)."""
        out = []
        multi = len({t for t, _ in self.rows if t}) > 1
        for row in self.rows.values():
            failed = "XFAIL" if row.status == "XFAIL" else "FAIL "
            where = f"{row.target}/" if multi and row.target else ""
            out += [f"ERROR {where}{m}" for m in row.errors] + [f"{failed} {where}{m}" for m in row.failures]
            out += [f"warn  {where}{m}" for m in row.warnings]
        return out

    def to_json(self) -> dict:
        return {"rows": [r.to_dict() for r in self.rows.values()]}

    def write(self, directory: Path) -> Path:
        """results.json in `directory`, written atomically (nerf_eval.atomic)."""
        from nerf_eval.atomic import atomic_write_text

        return atomic_write_text(json.dumps(self.to_json(), indent=1, default=str), Path(directory) / "results.json")


def check_report_dir(directory: Path) -> None:
    """Refuse, before any test runs, a --nerf-report-dir that is a file or cannot be created, or that
    holds a results.json this plugin did not write: a run replaces its own earlier results (as
    --junitxml replaces its file), never a file of the user's."""
    from nerf_eval.atomic import check_parent
    from nerf_eval.errors import NerfEvalError

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NerfEvalError(f"--nerf-report-dir {directory}: exists and is not a directory")
    check_parent(directory, "--nerf-report-dir directory")
    results = directory / "results.json"
    if results.exists() or results.is_symlink():
        try:
            doc = json.loads(results.read_text())
            ours = isinstance(doc, dict) and set(doc) == {"rows"} and isinstance(doc["rows"], list)
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise NerfEvalError(f"{results}: not a results.json nerfcompress wrote; refusing to overwrite it "
                                "(choose another --nerf-report-dir)")


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def _cells(label: str, rec: dict, base: dict, status: str) -> tuple[str, ...]:
    psnr, b_psnr = rec.get("psnr"), base.get("psnr")
    size, b_size = rec.get("size_bytes"), base.get("size_bytes")
    lat, b_lat = rec.get("latency_s"), base.get("latency_s")
    speedup = rec.get("speedup") or (b_lat / lat if lat and b_lat else None)  # paired where it was timed so
    worst = rec.get("worst_psnr")
    return (
        label,
        _fmt(psnr, ".2f"),
        _fmt(psnr - b_psnr, "+.2f") if psnr is not None and b_psnr is not None else "-",
        _fmt(rec.get("ssim"), ".3f"),
        _fmt(rec.get("flip"), ".3f"),
        f"{worst:.2f} (#{rec.get('worst_view')})" if worst is not None else "-",
        _fmt(rec.get("depth_error"), ".3f"),
        METRICS["size"].show(size) if size is not None else "-",
        _fmt(size / b_size, ".2f") + "x" if size and b_size else "-",
        METRICS["latency"].show(lat) if lat is not None else "-",
        _fmt(speedup, ".2f") + "x" if speedup else "-",
        status,
    )
