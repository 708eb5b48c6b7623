"""Saved pytest-benchmark runs, read (never written) for quality regression checks.

The files are found with pytest-benchmark's own storage object (`.benchmarks/<machine-id>/NNNN_*.json`,
the same files `--benchmark-compare` picks), then parsed here so that a corrupt file is a clear error
naming it instead of pytest-benchmark's skipped warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest


class SavedRunError(ValueError):
    """A saved benchmark run that cannot be used (unreadable, corrupt, wrong layout, wrong storage)."""


@dataclass(frozen=True)
class SavedRun:
    """One saved run: its file and its parsed content."""

    path: Path
    data: dict

    @property
    def source(self) -> str:
        return self.path.name

    def quality(self, nodeid: str, name: str) -> dict | None:
        """The record of model `name` that test `nodeid` saved (in its benchmark's extra_info or in the
        file's nerfcompress section, see nerf_eval.history), or None when it has none."""
        from nerf_eval.history import find_record  # imports torch (through nerf_eval): only when comparing

        return find_record(self.data, nodeid, name)


def compare_request(config: pytest.Config) -> bool | str | None:
    """The value of --benchmark-compare (True: latest run; str: run id), or None when not given."""
    try:
        value = config.getoption("benchmark_compare")
    except ValueError:  # pytest-benchmark disabled (-p no:benchmark)
        return None
    return value or None


def compared_files(config: pytest.Config, compare: bool | str) -> list[Path]:
    """The saved files --benchmark-compare designates, found through pytest-benchmark's storage."""
    session = getattr(config, "_benchmarksession", None)
    storage = getattr(session, "storage", None)
    if storage is None or not hasattr(storage, "query"):
        raise SavedRunError(f"benchmark storage {storage!s}: only file storage is supported for quality "
                            "regression checks")
    if compare is True:
        return list(storage.query("[0-9][0-9][0-9][0-9]_"))[-1:]
    return list(storage.query(str(compare)))


def load_saved_run(path: Path) -> SavedRun:
    """Parse one saved run; every problem is a one-line SavedRunError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf8"))
    except json.JSONDecodeError as e:
        raise SavedRunError(f"{path}: corrupt saved benchmark run (invalid JSON at line {e.lineno} "
                            f"column {e.colno}: {e.msg})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SavedRunError(f"{path}: cannot read saved benchmark run ({type(e).__name__}: {e})") from None
    benches = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benches, list) or not all(isinstance(b, dict) and "fullname" in b for b in benches):
        raise SavedRunError(f"{path}: not a pytest-benchmark saved run (no 'benchmarks' list of entries "
                            "with 'fullname')")
    return SavedRun(Path(path), data)
