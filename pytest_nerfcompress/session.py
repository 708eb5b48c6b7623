"""Per-session state of the plugin, registered as a pytest plugin object in `pytest_configure`.

It holds the resolved options, the compressor registries, one Workbench per target, the saved runs
read for comparison and the summary, and implements the reporting hooks. The modules that import
torch (registry, workbench) are imported on first use, so a session that never requests the
plugin's fixtures does not pay for them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_nerfcompress.gates import GateError, GateSpec, Tolerance, tolerances
from pytest_nerfcompress.options import NerfOptions, resolve
from pytest_nerfcompress.record import publish
from pytest_nerfcompress.storage import SavedRun, SavedRunError, compared_files, load_saved_run
from pytest_nerfcompress.summary import Summary

if TYPE_CHECKING:
    from pytest_nerfcompress.registry import Choice, Registries
    from pytest_nerfcompress.target import Target
    from pytest_nerfcompress.workbench import Workbench

XDIST_NOTE = "pytest-xdist is active; latency and speed-up need a serial run"
STASH_KEY = pytest.StashKey["NerfSession"]()


def xdist_active(config: pytest.Config) -> bool:
    """True on pytest-xdist workers and on a controller that distributes tests."""
    if hasattr(config, "workerinput") or os.environ.get("PYTEST_XDIST_WORKER"):  # as pytest-benchmark decides
        return True
    try:
        return config.getoption("dist") != "no" and bool(config.getoption("numprocesses", None))
    except ValueError:
        return False


class NerfSession:
    """The plugin's state for one pytest session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.options: NerfOptions = resolve(config)
        try:
            self.default_gates = GateSpec.parse(self.options.gates, where="--nerf-gate")
            if self.options.max_psnr_drop is not None:
                self.default_gates = self.default_gates.merged(
                    GateSpec(relative={"psnr_drop": self.options.max_psnr_drop}))
            self.tolerances: dict[str, Tolerance] = tolerances(self.options.compare_fail)
        except GateError as e:
            raise pytest.UsageError(str(e)) from None
        self.worker = hasattr(config, "workerinput")
        self.xdist = xdist_active(config)
        self.summary = Summary()
        self._registries: Registries | None = None
        self._workbenches: dict[Target, Workbench] = {}
        self._saved: dict[Path, SavedRun | SavedRunError] = {}

    # compressors -------------------------------------------------------------------------------
    def registries(self) -> "Registries":
        if self._registries is None:
            from pytest_nerfcompress.registry import Registries

            self._registries = Registries(self.config)
        return self._registries

    def choices(self, path: Path | None, hook: Any) -> list["Choice"]:
        """The compressors tests at `path` run (--nerf-compressors, or all registered)."""
        return self.registries().choices(path, hook, self.options.compressors)

    # targets -----------------------------------------------------------------------------------
    def workbench(self, target: "Target") -> "Workbench":
        """The one Workbench of `target` in this session."""
        from pytest_nerfcompress.cache import EvalCache
        from pytest_nerfcompress.workbench import Workbench

        target = target.resolved(self.config.rootpath)
        if target not in self._workbenches:
            if not self._workbenches:
                from nerf_eval.memory import keep_freed_memory

                keep_freed_memory()  # fp32 and compressed models timed alike; only sessions that measure NeRFs
            cache = getattr(self.config, "cache", None)
            directory = cache.mkdir("nerfcompress") if cache is not None else None
            self._workbenches[target] = Workbench(target, self.options, EvalCache(directory),
                                                  XDIST_NOTE if self.xdist else None)
        return self._workbenches[target]

    # saved runs --------------------------------------------------------------------------------
    def saved_runs(self, compare: bool | str) -> list[SavedRun]:
        """The runs --benchmark-compare designates, each parsed once (errors are remembered too)."""
        runs = []
        for path in compared_files(self.config, compare):
            if path not in self._saved:
                try:
                    self._saved[path] = load_saved_run(path)
                except SavedRunError as e:
                    self._saved[path] = e
            result = self._saved[path]
            if isinstance(result, SavedRunError):
                raise result
            runs.append(result)
        return runs

    # reporting hooks ---------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """A compressor whose fixture failed in setup gets an ERROR row naming it."""
        if call.when == "setup" and call.excinfo is not None and not call.excinfo.errisinstance(
                pytest.skip.Exception):
            choice = getattr(getattr(item, "callspec", None), "params", {}).get("nerf_compressor")
            if choice is not None:
                target = getattr(call.excinfo.value, "nerf_target", "")
                message = (str(call.excinfo.value).strip().splitlines() or [""])[0]
                publish(item, {"kind": "error", "target": target, "name": getattr(choice, "name", str(choice)),
                               "message": message})
        return (yield)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.summary.add_report(report.nodeid, report.outcome, report.user_properties)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.worker or not self.summary.rows:
            return
        tr = terminalreporter
        tr.section("nerfcompress summary")
        for line in self.summary.table():
            tr.write_line(line)
        for line in self.summary.messages():
            tr.write_line(line)
        if self.xdist:
            tr.write_line(f"nerfcompress: {XDIST_NOTE} (quality gates ran on the workers)")
        if self.options.report_dir is not None:
            tr.write_line(f"nerfcompress: results written to {self.options.report_dir / 'results.json'}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.worker and self.summary.rows and self.options.report_dir is not None:
            self.summary.write(self.options.report_dir)
