"""The objects the `nerf_evaluator` and `nerf_gate` fixtures return, bound to one test.

The evaluator measures a model (quality, size, latency) and publishes the record: into the test's
`user_properties` (for the summary, also across pytest-xdist workers, and for saved runs) and, when the
test uses pytest-benchmark's `benchmark`, into its `extra_info`. The gate applies the thresholds
(option < compressor registration < marker < call). The comparison with a saved run is not the gate's:
`saved_run_outcome` applies it to every record a test published, after the test ran, whatever fixtures
the test used (see NerfSession.pytest_runtest_call).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any, Callable

import pytest

from pytest_nerfcompress.failures import one_line_errors
from nerf_eval.measure.gates import GateError, GateSpec, Outcome, check_saved
from nerf_eval.measure.record import Record
from nerf_eval.measure.spec import MeasurementSpec
from pytest_nerfcompress.properties import EXTRA_INFO_KEY, publish
from pytest_nerfcompress.storage import SavedRunError

if TYPE_CHECKING:
    from nerf_eval.model import ModelPair
    from pytest_nerfcompress.session import NerfSession
    from nerf_eval.measure.workbench import CompressedModel, Workbench


class NerfCompressWarning(UserWarning):
    """A check that could not be made (no comparable saved run, latency not measurable)."""


def benchmark_of(request: pytest.FixtureRequest) -> Any | None:
    """The test's pytest-benchmark fixture, if the test requested it."""
    if "benchmark" not in request.fixturenames:
        return None
    return request.getfixturevalue("benchmark")


class Evaluator:
    """`nerf_evaluator(model)` -> Record with PSNR, SSIM, FLIP, worst view, depth error, size, latency.

    `model` is what `nerf_compressed` returns, or a bare ModelPair (then pass `name=`)."""

    def __init__(self, request: pytest.FixtureRequest, workbench: "Workbench") -> None:
        self.request = request
        self.workbench = workbench
        self._pairs: dict[str, "ModelPair"] = {}  # the model behind each record of this test, for timing

    @staticmethod
    def unpack(model: "CompressedModel | ModelPair", name: str | None) -> tuple["ModelPair", str]:
        pair = getattr(model, "pair", model)
        return pair, name or getattr(model, "name", None) or "model"

    def __call__(self, model: "CompressedModel | ModelPair", latency: bool = True,
                 name: str | None = None) -> Record:
        """Measure `model`; with `latency=False` skip the timing (e.g. when `benchmark` times it)."""
        pair, name = self.unpack(model, name)
        with one_line_errors(self.workbench.target.name, self.request.node, name):
            record = self.workbench.record(name, pair)
            self._pairs[name] = pair
            if latency:
                self.time(record)
            self.publish(record)
        return record

    def time(self, record: Record) -> Record:
        """Fill `record`'s latency and speed-up by timing its model interleaved with fp32 (the paired
        protocol of `nerf_eval.measure`); unchanged where timing is not possible here."""
        pair = self._pairs.get(record.name)
        timing = self.workbench.paired_timing(pair) if pair is not None else None
        if timing is not None:
            record.take_timing(timing)
        return record

    @property
    def baseline(self) -> Record:
        """The fp32 reference record (quality and size; latency via `latency`)."""
        return dataclasses.replace(self.workbench.baseline)

    def latency(self, model: "CompressedModel | ModelPair") -> float | None:
        """Seconds to render the fixed latency batch (min over rounds); None under pytest-xdist."""
        return self.workbench.latency(self.unpack(model, None)[0])

    def render_batch(self, model: "CompressedModel | ModelPair") -> Callable[[], dict]:
        """A no-argument function that renders the latency batch: `benchmark(nerf_evaluator.render_batch(m))`."""
        return self.workbench.render_latency_batch(self.unpack(model, None)[0])

    def baseline_for(self, record: Record) -> Record:
        """The fp32 record, with its latency measured when `record` has one (speed-up needs both)."""
        base = self.baseline
        if record.reference_latency_s is not None:  # fp32 timed in the same rounds as the record's model
            base.latency_s = record.reference_latency_s
        elif record.latency_s is not None:
            base.latency_s = self.workbench.baseline_latency()
        return base

    def publish(self, record: Record) -> None:
        base = self.baseline_for(record)
        publish(self.request.node, {"kind": "record", "target": record.target, "name": record.name,
                               "record": record.to_dict(), "baseline": base.to_dict()})
        bench = benchmark_of(self.request)
        if bench is not None:
            bench.extra_info[EXTRA_INFO_KEY] = record.to_dict()


def benchmark_latency(bench: Any) -> float | None:
    """The minimum round time pytest-benchmark measured (None when it did not time anything)."""
    stats = getattr(getattr(bench, "stats", None), "stats", None)
    return getattr(stats, "min", None)


class Gate:
    """`nerf_gate(record, *limits, **thresholds)` applies every gate to `record` and fails the test
    with one line per violated threshold; returns the Outcome when it passes."""

    def __init__(self, request: pytest.FixtureRequest, evaluator: Evaluator, session: "NerfSession") -> None:
        self.request = request
        self.evaluator = evaluator
        self.session = session

    def spec(self, record: Record, limits: tuple[str, ...] = (), thresholds: dict | None = None) -> GateSpec:
        """Option/ini gates, then the compressor's registered gates, then markers, then the call."""
        spec = self.session.default_gates
        declared = self.evaluator.workbench.declared_gates.get(record.name, {})
        spec = spec.merged(GateSpec.parse(keywords=declared, where=f"{record.name}: registered gates"))
        for mark in reversed(list(self.request.node.iter_markers("nerf_gate"))):
            spec = spec.merged(GateSpec.parse(mark.args, mark.kwargs, where="@pytest.mark.nerf_gate"))
        return spec.merged(GateSpec.parse(limits, thresholds, where="nerf_gate()"))

    def __call__(self, record: Record, *limits: str, **thresholds: float) -> Outcome:
        bench = benchmark_of(self.request)
        if record.latency_s is None and bench is not None:  # timed by pytest-benchmark: pair it with fp32 too
            self.evaluator.time(record)
            if record.latency_s is None:
                record.latency_s = benchmark_latency(bench)
        try:
            spec = self.spec(record, limits, thresholds)
        except GateError as e:  # a misspelt gate must fail, not pass unchecked
            message = str(e) if str(e).startswith(record.name) else f"{record.name}: {e}"
            outcome = Outcome(failures=[message])
        else:
            with one_line_errors(record.target, self.request.node, record.name):
                base = self.evaluator.baseline_for(record)
            outcome = spec.check(record.name, vars(record), vars(base), self.evaluator.workbench.timing_note)
        with one_line_errors(record.target, self.request.node, record.name):
            self.evaluator.publish(record)
        publish(self.request.node, {"kind": "gate", "target": record.target, "name": record.name,
                                    "failures": outcome.failures, "warnings": outcome.warnings,
                                    "checked": outcome.checked, "skipped": []})
        for line in outcome.warnings:
            warnings.warn(NerfCompressWarning(line), stacklevel=2)
        if outcome.failures:
            pytest.fail("\n".join(outcome.failures), pytrace=False)
        return outcome


def saved_run_outcome(session: "NerfSession", compare: bool | str, nodeid: str, record: dict,
                      skipped: list[str]) -> Outcome:
    """Compare one published record with the runs --benchmark-compare names; a missing or incomparable
    baseline follows --nerf-missing-baseline (warn, fail or skip: appended to `skipped`), never a
    silent pass."""
    out = Outcome()
    policy = session.options.missing_baseline
    name = str(record.get("name", ""))

    def missing(message: str) -> None:
        {"warn": out.warnings, "fail": out.failures, "skip": skipped}[policy].append(message)

    try:
        runs = session.saved_runs(compare)
    except SavedRunError as e:
        out.failures.append(f"{name}: {e}")
        return out
    if not runs:
        which = "" if compare is True else f" matching {compare!r}"
        missing(f"{name}: no saved benchmark run{which} to compare with (--benchmark-compare); "
                "quality not compared")
    try:
        spec = MeasurementSpec.from_dict(Record.from_dict(record).identity())
    except (KeyError, IndexError, TypeError, ValueError):
        out.failures.append(f"{name}: this run's record names no complete measurement spec; cannot compare it")
        return out
    for run in runs:
        saved = run.quality(nodeid, name)
        if saved is None:
            missing(f"{name}: saved run {run.source} has no quality metrics for {nodeid}")
        elif (reason := spec.mismatch(saved)) is not None:
            missing(f"{name}: not compared with saved run {run.source}: {reason}")
        else:
            out.extend(check_saved(name, record, saved, run.source, session.tolerances))
    return out
