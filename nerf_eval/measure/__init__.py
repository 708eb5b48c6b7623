"""Measuring compressed NeRFs: one protocol for every caller (the CLI report, autocompress, the plugin).

`latency`: paired, interleaved timing of a reference and candidates (callables in, numbers out);
`render_latency`: the callables for rendering a fixed ray batch with model pairs;
`batches`: the calibration and latency ray batches themselves.
"""

from nerf_eval.measure.batches import calibration_batch, latency_batch
from nerf_eval.measure.latency import (ORDERS, PairedProtocol, PairedTiming, summarize, time_pair,
                                       time_paired)
from nerf_eval.measure.render_latency import render_batch, time_render_pair, time_renders

__all__ = ["ORDERS", "PairedProtocol", "PairedTiming", "calibration_batch", "latency_batch", "render_batch", "summarize", "time_pair", "time_paired",
           "time_render_pair", "time_renders"]
