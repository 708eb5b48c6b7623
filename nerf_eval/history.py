"""Quality and speed of each compressor across saved pytest-benchmark runs: a table and a trend plot.

The pytest plugin stores one record per measured model in a saved run (pytest-benchmark's JSON):
in a benchmark's `extra_info["nerfcompress"]` when the test timed it with the `benchmark` fixture, and
in the file's top-level `"nerfcompress": {"records": [{"test": NODEID, "record": {...}}]}` section
otherwise (that section's `machine` entry says which kernels the machine chose, `nerf_eval.machine`).
This module reads both (the plugin's saved-run comparison reads them through it too), so a storage
directory can be followed over time without pytest-benchmark, whose own `compare` shows timings only.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from nerf_eval.atomic import atomic_write_bytes
from nerf_eval.errors import NerfEvalError

SAVED_KEY = "nerfcompress"


class HistoryError(NerfEvalError):
    """A storage that holds no readable saved run."""


@dataclass(frozen=True)
class SavedRecord:
    """One model's figures in one saved run: the test that measured it and the record's fields."""

    test: str
    record: dict
    latency_s: float | None  # the record's own, else the benchmark's minimum round time

    @property
    def name(self) -> str:
        return str(self.record.get("name", ""))

    @property
    def target(self) -> str:
        return str(self.record.get("target", ""))


def saved_records(data: dict) -> Iterator[SavedRecord]:
    """Every plugin record of one parsed saved run, benchmarks' `extra_info` first (entries of another
    shape than the plugin writes are passed over)."""
    benches = data.get("benchmarks")
    for bench in benches if isinstance(benches, list) else ():
        info = bench.get("extra_info") if isinstance(bench, dict) else None
        record = info.get(SAVED_KEY) if isinstance(info, dict) else None
        if isinstance(record, dict):
            latency = record.get("latency_s")
            if latency is None:
                stats = bench.get("stats")
                latency = stats.get("min") if isinstance(stats, dict) else None
            yield SavedRecord(str(bench.get("fullname", "")), record, latency)
    section = data.get(SAVED_KEY)
    entries = section.get("records") if isinstance(section, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("record"), dict):
            yield SavedRecord(str(entry.get("test", "")), entry["record"], entry["record"].get("latency_s"))


def find_record(data: dict, test: str, name: str) -> dict | None:
    """The record of model `name` measured by test `test` in a parsed saved run (None if absent)."""
    for saved in saved_records(data):
        if saved.test == test and saved.name == name:
            return saved.record
    return None


@dataclass(frozen=True)
class Run:
    """A saved run: its file name (the id pytest-benchmark's --benchmark-compare takes), date and records."""

    source: str
    datetime: str
    records: list[SavedRecord]


def load_runs(storage: str | Path) -> list[Run]:
    """The saved runs under `storage` (pytest-benchmark's `NNNN_*.json` in machine subdirectories, or any
    `*.json`), oldest first by file name; files that are not saved runs are refused with their name."""
    root = Path(storage)
    if not root.is_dir():
        raise HistoryError(f"{root}: no such storage directory")
    files = sorted(root.rglob("*.json"), key=lambda p: (p.name, str(p)))
    runs = []
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HistoryError(f"{path}: not a readable saved run ({type(e).__name__}: {e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
            raise HistoryError(f"{path}: not a pytest-benchmark saved run (no 'benchmarks' list)")
        runs.append(Run(path.stem, str(data.get("datetime", "")), list(saved_records(data))))
    if not runs:
        raise HistoryError(f"{root}: no saved benchmark runs (*.json) found")
    return runs


def _num(value: object, spec: str, scale: float = 1.0, unit: str = "") -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return format(value * scale, spec) + unit


def history_rows(runs: list[Run]) -> list[tuple[str, ...]]:
    """One row per (target, compressor, run): the figures the table prints, runs in order."""
    rows = []
    for run in runs:
        seen = set()
        for saved in run.records:
            key = (saved.target, saved.name)
            if key in seen:  # one model measured by several tests: its first record speaks for the run
                continue
            seen.add(key)
            r = saved.record
            worst = (f"{_num(r.get('worst_psnr'), '.2f')} (#{r.get('worst_view')})"
                     if r.get("worst_psnr") is not None else "-")
            rows.append((saved.target, saved.name, run.source, _num(r.get("psnr"), ".2f"), worst,
                         _num(r.get("size_bytes"), ".3f", 1e-6, " MB"), _num(saved.latency_s, ".1f", 1e3, " ms")))
    return sorted(rows, key=lambda row: (row[0], row[1]))  # stable: runs stay in order within a model


HEADER = ("target", "compressor", "run", "PSNR dB", "worst view dB", "size", "latency")


def history_table(runs: list[Run]) -> str:
    """The rows of `history_rows` as aligned text, one block of runs per compressor."""
    rows = [HEADER, *history_rows(runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plot_history(runs: list[Run], out: str | Path) -> Path:
    """A PNG with PSNR, worst-view PSNR, size and latency per compressor against the run (one line each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("psnr", "PSNR (dB)", 1.0), ("worst_psnr", "worst view PSNR (dB)", 1.0),
              ("size_bytes", "size (MB)", 1e-6), ("latency_s", "latency (ms)", 1e3))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    labels = [run.source for run in runs]
    series: dict[tuple[str, str], dict[int, SavedRecord]] = {}
    for i, run in enumerate(runs):
        for saved in run.records:
            series.setdefault((saved.target, saved.name), {}).setdefault(i, saved)
    for ax, (key, title, scale) in zip(axes.flat, panels):
        for (target, name), by_run in sorted(series.items()):
            xs, ys = [], []
            for i, saved in sorted(by_run.items()):
                value = saved.latency_s if key == "latency_s" else saved.record.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    xs.append(i)
                    ys.append(value * scale)
            if xs:
                ax.plot(xs, ys, marker="o", label=f"{target}/{name}" if target else name)
        ax.set_title(title)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.grid(alpha=0.3)
    handles, names = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), fontsize=7)
    fig.tight_layout(rect=(0, 0.08 + 0.02 * (len(names) // 4), 1, 1))
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(png.getvalue(), out)  # the old plot or the new one, never a part
