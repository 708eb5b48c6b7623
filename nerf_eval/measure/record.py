"""One measured model: the record `nerf-eval report`, autocompress, model cards and the pytest plugin
all fill, and the JSON it travels as.

Records go into report directories (results.json), into pytest-benchmark's `extra_info` (so saved runs
hold them) and into each test report's `user_properties`. A field nobody measured is None (null in
JSON), never a made-up number.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from nerf_eval.errors import describe

if TYPE_CHECKING:
    from nerf_eval.measure.latency import PairedTiming

# names earlier reports (results.json rows) used for fields that now have one name everywhere
LEGACY_NAMES = {"latency_speedup": "speedup", "latency_speedup_spread": "speedup_spread",
                "baseline_latency_s": "reference_latency_s"}


@dataclass
class Record:
    """Quality (means over the evaluated views), serialized size and latency of one model.

    What was measured: `scene`, `checkpoint_sha256` and `settings` (with `spec_sha256`, the
    fingerprint of the whole `MeasurementSpec`) say it, so figures measured otherwise are recognised as
    not comparable; `target` and `checkpoint` name them for people.

    Quality: `psnr`, `ssim`, `flip`, `sharpness` (gradient energy over the ground truth's) and
    `depth_error` (against true depth) are means over `views` (scene indices), `per_view` has each
    view's; `worst_view` is the scene index of the lowest PSNR. `depth_change` is the mean |depth -
    fp32's depth| (where no true depth exists, how far compression moves the geometry).

    Size: `size_bytes` both networks serialized, `size_fine_bytes` the fine one alone (what the
    reference report quotes), `params` their parameters.

    Timing is paired (see `nerf_eval.measure.latency`): `latency_s` is the model's median time for
    the latency batch over `latency_rounds` rounds interleaved with fp32, `reference_latency_s` fp32's
    median in the same rounds, `speedup` the median of the per-round ratios and `speedup_spread` their
    interquartile range; `latency_threads` the torch threads they were timed on. `render_time_s` is one
    pass over the evaluated views (`baseline_time_s`: fp32's in the same run), `compress_time_s` the
    compressor's time.

    `error` is the one-line failure of a model that could not be built or measured."""

    name: str
    target: str = ""
    scene: str = ""
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    settings: dict = field(default_factory=dict)
    spec_sha256: str = ""
    psnr: float | None = None
    ssim: float | None = None
    flip: float | None = None
    worst_psnr: float | None = None
    worst_view: int | None = None
    depth_error: float | None = None
    depth_change: float | None = None
    sharpness: float | None = None
    size_bytes: int | None = None
    size_fine_bytes: int | None = None
    params: int | None = None
    latency_s: float | None = None
    speedup: float | None = None
    speedup_spread: float | None = None
    reference_latency_s: float | None = None
    latency_rounds: int | None = None
    latency_threads: int | None = None
    render_time_s: float | None = None
    baseline_time_s: float | None = None
    compress_time_s: float | None = None
    views: list[int] = field(default_factory=list)
    per_view: list[dict] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        """JSON-safe: non-finite floats become None (also inside `per_view`)."""
        return {k: _finite_or_none(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Record":
        """A record read back from JSON: unknown keys ignored, missing ones None, the names earlier
        reports used mapped to today's, non-finite numbers (earlier reports wrote NaN) as None; a value of
        the wrong type (a file may hold anything) is a ValueError naming its key."""
        if not isinstance(d, Mapping) or not isinstance(d.get("name"), str):
            raise ValueError(f"a record is a JSON object with a 'name' string, not {describe(d)}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        values = {LEGACY_NAMES.get(k, k): v for k, v in d.items()}
        for key, value in values.items():
            if key in types and not _has_type(value, str(types[key])):
                raise ValueError(f"record {d['name']!r}: {key!r} is {describe(value)}, expected {types[key]}")
        out = cls(**{k: _finite_or_none(v) for k, v in values.items() if k in types})
        if out.worst_view is not None and out.worst_view < 0:  # earlier reports: -1 for "none"
            out.worst_view = None
        return out

    def take_timing(self, timing: "PairedTiming") -> "Record":
        """Fill the latency fields from a paired timing of this record's model against fp32."""
        self.latency_s, self.reference_latency_s = timing.latency_s, timing.reference_latency_s
        self.speedup, self.speedup_spread = timing.speedup, timing.spread
        self.latency_rounds, self.latency_threads = timing.rounds, timing.threads or None
        return self

    def identity(self) -> dict:
        """What the record was measured on, in the form `MeasurementSpec.mismatch` reads."""
        return {"scene": self.scene, "checkpoint_sha256": self.checkpoint_sha256, "settings": self.settings,
                "spec_sha256": self.spec_sha256}


def _has_type(value: object, annotation: str) -> bool:
    """Whether a JSON value fits a field annotated `annotation` (the strings this module's fields use)."""
    if value is None:
        return annotation.endswith("| None")
    if annotation.startswith("float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation.startswith("int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation.startswith("str"):
        return isinstance(value, str)
    if annotation.startswith("dict"):
        return isinstance(value, dict)
    if annotation.startswith("list"):
        return isinstance(value, list)
    return True


def _finite_or_none(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite_or_none(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite_or_none(x) for x in v]
    return v
