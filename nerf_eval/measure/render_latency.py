"""Paired render latency of model pairs: the NeRF side of `nerf_eval.measure.latency`.

Builds the callables that render one fixed ray batch (deterministic, chunked, no autograd: what a
deployed renderer does) and hands them to the paired protocol, so the reference pair and every candidate
pair are timed interleaved on the same rays at the same settings.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Mapping

import torch

from nerf_eval.hardware import intra_op_threads
from nerf_eval.measure.latency import Clock, PairedProtocol, PairedTiming, time_paired
from nerf_eval.model import ModelPair
from nerf_eval.render import Rays, RenderSettings, render_chunked


def render_batch(pair: ModelPair, rays: Rays, settings: RenderSettings = RenderSettings(), threads: int = 0
                 ) -> Callable[[], dict[str, torch.Tensor]]:
    """A no-argument callable rendering `rays` with `pair` (what is timed), on `threads` torch threads
    (0: as torch is set; switching costs well under a millisecond a call)."""
    if threads <= 0:
        return lambda: render_chunked(pair, rays, settings)

    def run() -> dict[str, torch.Tensor]:
        with intra_op_threads(threads):
            return render_chunked(pair, rays, settings)
    return run


def time_renders(reference: ModelPair, candidates: Mapping[str, ModelPair], rays: Rays,
                 settings: RenderSettings = RenderSettings(), protocol: PairedProtocol = PairedProtocol(),
                 clock: Clock = time.perf_counter_ns, threads: int = 0) -> dict[str, PairedTiming]:
    """Render `rays` with the reference and each candidate pair interleaved; one result per candidate.

    A candidate may be the reference pair itself (fp32 against itself: the noise floor of the machine).
    `threads`: torch intra-op threads while timing (0: as torch is set); 1 keeps ratios steady on a
    shared machine (see `nerf_eval.hardware.intra_op_threads`)."""
    with intra_op_threads(threads):
        out = time_paired(render_batch(reference, rays, settings),
                          {name: render_batch(pair, rays, settings) for name, pair in candidates.items()},
                          protocol, clock)
        used = torch.get_num_threads()
    return {name: dataclasses.replace(t, threads=used) for name, t in out.items()}


def time_render_pair(reference: ModelPair, candidate: ModelPair, rays: Rays,
                     settings: RenderSettings = RenderSettings(), protocol: PairedProtocol = PairedProtocol(),
                     name: str = "candidate", clock: Clock = time.perf_counter_ns, threads: int = 0
                     ) -> PairedTiming:
    """One candidate pair against the reference pair (see `time_renders`)."""
    return time_renders(reference, {name: candidate}, rays, settings, protocol, clock, threads)[name]
