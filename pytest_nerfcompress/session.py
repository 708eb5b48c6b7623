"""Per-session state of the plugin, registered as a pytest plugin object in `pytest_configure`.

It holds the resolved options, the compressor registries, one Workbench per target, the saved runs
read for comparison and the summary, and implements the hooks that make a run measure or fail:

- after collection, the target the options describe is checked when a collected test measures it
  (scene name, checkpoint present and trained on that scene): a one-line usage error otherwise;
- after each test, every record it published is compared with the --benchmark-compare run;
- a known failure's xfail reason gets its measured figure;
- --benchmark-autosave/--benchmark-save keep no run whose quality gates failed (unless --nerf-accept),
  and saved runs get the records of tests that did not use the `benchmark` fixture.

The modules that import torch (registry, workbench) are imported on first use, so a session that
never requests the plugin's fixtures does not pay for them.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from nerf_eval.measure.gates import GateError, GateSpec, Tolerance, tolerances
from pytest_nerfcompress.options import NerfOptions, resolve
from pytest_nerfcompress.properties import EXTRA_INFO_KEY, PROPERTY_KEY, publish
from pytest_nerfcompress.storage import SavedRun, SavedRunError, compare_request, compared_files, load_saved_run
from pytest_nerfcompress.summary import Summary, check_report_dir

if TYPE_CHECKING:
    from pytest_nerfcompress.registry import Choice, Registries
    from pytest_nerfcompress.target import Target
    from nerf_eval.measure.workbench import Workbench

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


def uses_plugin_target(item: pytest.Item) -> bool:
    """True when the test's `nerf_target` is the plugin's own (the options' target), not a conftest's."""
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).get("nerf_target")
    return bool(defs) and getattr(defs[-1].func, "__module__", "") == "pytest_nerfcompress.fixtures"


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
            self.tolerances: dict[str, Tolerance] = tolerances(self.options.compare_fail, where="--nerf-compare-fail")
        except GateError as e:
            raise pytest.UsageError(str(e)) from None
        self.worker = hasattr(config, "workerinput")
        if self.options.report_dir is not None and not self.worker:
            from nerf_eval.errors import NerfEvalError

            try:
                check_report_dir(self.options.report_dir)
            except NerfEvalError as e:
                raise pytest.UsageError(str(e)) from None
        self.xdist = xdist_active(config)
        self.summary = Summary()
        self._registries: Registries | None = None
        self._workbenches: dict[Target, Workbench] = {}
        self._saved: dict[Path, SavedRun | SavedRunError] = {}
        self.measured: dict[tuple[str, str], dict] = {}  # (test node id, model name): its latest record
        self.save_refused: str | None = None

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
        from nerf_eval.measure.cache import EvalCache
        from nerf_eval.measure.workbench import Workbench
        from pytest_nerfcompress.provenance import missing_checkpoint_message

        target = target.resolved(self.config.rootpath)
        if target not in self._workbenches:
            cache = getattr(self.config, "cache", None)
            directory = cache.mkdir("nerfcompress") if cache is not None else None
            self._workbenches[target] = Workbench(
                target, self.options, EvalCache(directory), XDIST_NOTE if self.xdist else None, self.config.rootpath,
                lambda path, scene: missing_checkpoint_message(path, scene, self.options))
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

    # configuration check ------------------------------------------------------------------------
    def explicit_target(self) -> bool:
        """True when --nerf-scene or --nerf-checkpoint (or their ini keys) name the target."""
        return any(self.config.getoption(k) or self.config.getini(k) for k in ("nerf_scene", "nerf_checkpoint"))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Check the options' target once, if a collected test measures it (through the plugin's own
        `nerf_target`, or any target when the options name one): a misspelt scene, a missing
        checkpoint or one trained on another scene is a one-line usage error, not a green run of
        skips or a run that measures nonsense."""
        measuring = [item for item in session.items if "nerf_workbench" in getattr(item, "fixturenames", ())]
        if not measuring or not (self.explicit_target() or any(map(uses_plugin_target, measuring))):
            return
        from nerf_eval.errors import NerfEvalError, out_of_memory
        from pytest_nerfcompress.target import Target

        try:
            workbench = self.workbench(Target.from_options(self.options))
            workbench.pair  # noqa: B018  (scene spec, checkpoint present, card, trained on this scene)
            workbench.views  # noqa: B018  (the --nerf-views positions exist)
            workbench.settings  # noqa: B018  (the --nerf-samples counts can be rendered)
            workbench.calibration_rays  # noqa: B018  (the ray counts fit in memory)
            workbench.latency_rays  # noqa: B018
        except NerfEvalError as e:
            error = f"nerfcompress: {e}"
        except (MemoryError, RuntimeError) as e:
            message = out_of_memory(e)
            if message is None:
                raise
            error = f"nerfcompress: {message}"
        else:
            return
        raise pytest.UsageError(error)

    # saved-run comparison -----------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        """With --benchmark-compare, every record the test published is compared with the saved run
        after the test body, whatever fixtures it used; a test that passed fails (or skips) on what
        the comparison found, one that failed keeps its own failure (the summary gets both)."""
        compare = compare_request(self.config)
        if compare is None:
            return (yield)
        try:
            result = yield
        except BaseException:
            if not isinstance(sys.exc_info()[1], pytest.skip.Exception):
                self.compare_saved(item, compare)
            raise
        failures, skipped = self.compare_saved(item, compare)
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)
        if skipped:
            pytest.skip("; ".join(skipped))
        return result

    def compare_saved(self, item: pytest.Item, compare: bool | str) -> tuple[list[str], list[str]]:
        """Compare each record `item` published; publish the outcome; warn; return (failures, skips)."""
        from pytest_nerfcompress.checks import NerfCompressWarning, benchmark_latency, saved_run_outcome

        records: dict[str, dict] = {}
        for key, entry in item.user_properties:
            if key == PROPERTY_KEY and isinstance(entry, dict) and entry.get("kind") == "record":
                records[str(entry.get("name", ""))] = dict(entry.get("record") or {})
        bench = getattr(item, "funcargs", {}).get("benchmark")
        failures: list[str] = []
        all_skipped: list[str] = []
        for name, record in records.items():
            if record.get("latency_s") is None and bench is not None:
                record["latency_s"] = benchmark_latency(bench)
            skipped: list[str] = []
            out = saved_run_outcome(self, compare, item.nodeid, record, skipped)
            publish(item, {"kind": "gate", "target": record.get("target", ""), "name": name,
                           "failures": out.failures, "warnings": out.warnings, "checked": out.checked,
                           "skipped": skipped})
            for line in out.warnings:
                warnings.warn(NerfCompressWarning(line), stacklevel=1)
            failures += out.failures
            all_skipped += skipped
        return failures, all_skipped

    # saving benchmark runs -----------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_machine_info(self, config: pytest.Config, machine_info: dict) -> None:
        """The CPU's model and fast-path flags, torch and its threads (`nerf_eval.machine.machine_identity`)
        beside pytest-benchmark's own machine info. Only what stays the same between runs on one machine:
        pytest-benchmark compares machine info between a saved run and the current one; the kernels
        chosen by measurement go into the saved run's `nerfcompress` section (pytest_benchmark_update_json)."""
        from nerf_eval.machine import machine_identity

        machine_info[EXTRA_INFO_KEY] = machine_identity()

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_json(self, config: pytest.Config, benchmarks: list, output_json: dict) -> None:
        """Records that no benchmark's extra_info holds (tests without the `benchmark` fixture, or a
        test's other models) go into the saved run's `nerfcompress` section (see nerf_eval.history), with
        the machine record of this process (`nerf_eval.machine.machine_record`)."""
        in_benchmarks = set()
        for bench in output_json.get("benchmarks") or ():
            record = (bench.get("extra_info") or {}).get(EXTRA_INFO_KEY)
            if isinstance(record, dict):
                in_benchmarks.add((bench.get("fullname"), record.get("name")))
        records = [{"test": test, "record": record} for (test, name), record in self.measured.items()
                   if (test, name) not in in_benchmarks]
        from nerf_eval.machine import machine_record

        section = {"machine": machine_record()}  # the int8 engine and Linear kernels that made the timings
        if records:
            section["records"] = records
        output_json[EXTRA_INFO_KEY] = section

    def before_benchmark_saving(self) -> None:
        """Refuse to save a run whose quality gates failed (unless --nerf-accept); save one whose tests
        measured records without timing anything, which pytest-benchmark alone would not save."""
        bs = getattr(self.config, "_benchmarksession", None)
        saving = bs is not None and not self.worker and (bs.save or bs.autosave)
        if not saving:
            return
        failed = [f"{row.target}/{row.name}" if row.target else row.name
                  for row in self.summary.rows.values() if row.status in ("FAIL", "ERROR")]
        if failed and not self.options.accept:
            bs.save = bs.autosave = None
            shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
            self.save_refused = (f"nerfcompress: this run was not saved as a benchmark baseline: quality gates "
                                 f"failed for {shown}; pass --nerf-accept to save it anyway")
            return
        if not bs.benchmarks and self.measured and not bs.disabled:
            hook = self.config.hook
            commit_info = hook.pytest_benchmark_generate_commit_info(config=self.config)
            hook.pytest_benchmark_update_commit_info(config=self.config, commit_info=commit_info)
            output = hook.pytest_benchmark_generate_json(config=self.config, benchmarks=[], include_data=False,
                                                         machine_info=bs.get_machine_info(),
                                                         commit_info=commit_info)
            hook.pytest_benchmark_update_json(config=self.config, benchmarks=[], output_json=output)
            bs.storage.save(output, saving)
            bs.save = bs.autosave = None  # saved; pytest-benchmark would only warn that nothing was timed

    # reporting hooks ---------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """A compressor whose fixture failed in setup gets an ERROR row naming it; an expected failure's
        reason gets what was measured (the gate's failure line)."""
        if call.when == "setup" and call.excinfo is not None and not call.excinfo.errisinstance(
                pytest.skip.Exception):
            choice = getattr(getattr(item, "callspec", None), "params", {}).get("nerf_compressor")
            if choice is not None:
                target = getattr(call.excinfo.value, "nerf_target", "")
                message = (str(call.excinfo.value).strip().splitlines() or [""])[0]
                publish(item, {"kind": "error", "target": target, "name": getattr(choice, "name", str(choice)),
                               "message": message})
        report = yield
        if call.when == "call" and report.skipped and getattr(report, "wasxfail", None) and call.excinfo:
            measured = "; ".join(line for line in str(call.excinfo.value).strip().splitlines() if line.strip())
            if measured and not call.excinfo.errisinstance(pytest.xfail.Exception):
                report.wasxfail = f"{report.wasxfail}; measured: {measured}"
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        xfailed = report.skipped and bool(getattr(report, "wasxfail", None))
        self.summary.add_report(report.nodeid, report.outcome, report.user_properties, xfailed)
        for key, entry in report.user_properties or ():
            if key == PROPERTY_KEY and isinstance(entry, dict) and entry.get("kind") == "record":
                self.measured[(report.nodeid, str(entry.get("name", "")))] = entry.get("record") or {}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.save_refused is not None:
            terminalreporter.write_line(self.save_refused, red=True)
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

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session):
        """Before pytest-benchmark saves (its own sessionfinish), decide whether this run may be saved;
        after, write results.json."""
        self.before_benchmark_saving()
        result = yield
        if not self.worker and self.summary.rows and self.options.report_dir is not None:
            self.summary.write(self.options.report_dir)
        return result
