"""Measuring compressed NeRFs: one core for every caller (`nerf-eval report`, autocompress, model cards,
the pytest plugin).

`spec`: what a measurement is made on and how (`MeasurementSpec`, one fingerprint);
`record`: one measured model (`Record`), the JSON every caller writes;
`quality`: quality and size of a model pair on a scene's views, as a record;
`gates`: quality gates as data (relative to fp32, absolute, against a saved run);
`cache`: evaluations cached by fingerprint;
`workbench`: one target's scene, fp32 pair, ray batches, compressed models and records, cached;
`latency`: paired, interleaved timing of a reference and candidates (callables in, numbers out);
`render_latency`: the callables for rendering a fixed ray batch with model pairs;
`batches`: the calibration and latency ray batches themselves.

The names below load their module on first use, so importing a torch-free module of this package
(`spec`, `record`, `gates`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "calibration_batch": "batches", "latency_batch": "batches",
    "ORDERS": "latency", "PairedProtocol": "latency", "PairedTiming": "latency", "summarize": "latency",
    "time_pair": "latency", "time_paired": "latency",
    "render_batch": "render_latency", "time_render_pair": "render_latency", "time_renders": "render_latency",
    "MeasurementSpec": "spec", "Record": "record",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"nerf_eval.measure.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'nerf_eval.measure' has no attribute {name!r}")
