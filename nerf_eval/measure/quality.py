"""Quality and size of one model pair on a scene's views, as a `Record`: the one place that turns an
evaluation into record fields, so a report row, an autocompress candidate, a model card and a plugin
record of the same model on the same views hold the same figures.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

from nerf_eval.compress import serialized_size
from nerf_eval.evaluate import Evaluation, ViewRender, evaluate
from nerf_eval.measure.record import Record
from nerf_eval.model import ModelPair, count_parameters
from nerf_eval.render import RenderSettings
from nerf_eval.scenes.scene import Scene

QUALITY_KEYS = ("psnr", "ssim", "flip", "worst_psnr", "depth_error", "sharpness")


def size_fields(pair: ModelPair) -> dict:
    """Serialized bytes of both networks, of the fine one alone (the coarse one where there is no fine
    network) and the parameter count."""
    return {"size_bytes": serialized_size(pair), "size_fine_bytes": serialized_size(pair.fine or pair.coarse),
            "params": sum(count_parameters(n) for n in pair.networks().values())}


def quality_fields(mean: Mapping, per_view: Sequence[Mapping], views: Sequence[int]) -> dict:
    """Record fields from an evaluation's means and per-view metrics on `views` (scene indices): the
    worst view as a scene index, metrics a scene cannot give (depth error without true depth) None."""
    out = {k: (float(mean[k]) if k in mean else None) for k in QUALITY_KEYS}
    out["worst_view"] = int(views[int(mean["worst_view"])]) if "worst_view" in mean else None
    out["views"] = [int(v) for v in views]
    out["per_view"] = [dict(row) for row in per_view]
    return out


def record_from_metrics(name: str, pair: ModelPair, mean: Mapping, per_view: Sequence[Mapping],
                        views: Sequence[int], **fields) -> Record:
    """The record of `pair` from already computed metrics (`evaluate`'s, or a cache entry of them)."""
    return Record(name=name, **quality_fields(mean, per_view, views), **size_fields(pair), **fields)


def measure_quality(name: str, pair: ModelPair, scene: Scene, views: Sequence[int],
                    settings: RenderSettings = RenderSettings(), with_flip: bool = True,
                    identity: Mapping | None = None) -> tuple[Record, Evaluation]:
    """Render `views` of `scene` with `pair`, measure them and size the pair; `render_time_s` is the
    wall time of that pass. `identity` holds record fields saying what was measured (a
    `MeasurementSpec.to_dict()`, a target name). Returns the record and the evaluation (its renders
    included)."""
    t0 = time.perf_counter()
    ev = evaluate(pair, scene, list(views), settings, progress=False, with_flip=with_flip)
    seconds = time.perf_counter() - t0
    return record_from_metrics(name, pair, ev.mean, ev.per_view, ev.views, render_time_s=seconds,
                               **dict(identity or {})), ev


def depth_changes(depths: Sequence, references: Sequence) -> tuple[float, list[float]]:
    """Mean |depth - reference depth| per view (torch tensors; NaN where a view has no reference) and
    their mean over the views that have one."""
    per_view = [float((d - r).abs().mean()) if r is not None else float("nan") for d, r in zip(depths, references)]
    known = [d for d in per_view if d == d]
    return (sum(known) / len(known) if known else float("nan")), per_view


def depth_change(renders: list[ViewRender], reference: list[ViewRender]) -> tuple[float, list[float]]:
    """Mean |depth - reference depth| over all pixels of the views both rendered, and per view (in the
    order of `renders`; NaN for a view the reference lacks)."""
    ref = {r.index: r.depth for r in reference}
    return depth_changes([r.depth for r in renders], [ref.get(r.index) for r in renders])


def add_depth_change(record: Record, depths: Sequence, references: Sequence) -> Record:
    """Fill `record.depth_change` and each per-view row's from the depths of its views and fp32's."""
    record.depth_change, per_view = depth_changes(depths, references)
    for row, d in zip(record.per_view, per_view):
        row["depth_change"] = d
    return record
