"""Run compressors on one checkpoint and scene and collect comparable records.

The fp32 pair is always measured first, in the same run and on the same rays as every variant, so
speed figures are ratios measured side by side (the machines are noisy) and quality figures are
deterministic (seeded calibration rays, deterministic rendering). The latency batch of every variant is
timed interleaved with fp32 (nerf_eval.measure's paired protocol: fp32 and the variant alternate, round
by round), and its speed-up is the median of the per-round ratios, with their interquartile range beside
it; fp32's own row times fp32 against itself, which shows the noise floor of the run.
"""

from __future__ import annotations

import time
import traceback
from fnmatch import fnmatchcase

import torch
from tqdm.auto import tqdm

from nerf_eval.compress import get_compressor
from nerf_eval.compress.finetune import finetune
from nerf_eval.errors import first_line
from nerf_eval.evaluate import ViewRender
from nerf_eval.measure.latency import PairedProtocol, PairedTiming
from nerf_eval.measure.quality import add_depth_change, measure_quality
from nerf_eval.measure.record import Record
from nerf_eval.measure.render_latency import time_render_pair
from nerf_eval.measure.spec import MeasurementSpec
from nerf_eval.model import ModelPair, is_float_nerf
from nerf_eval.render import Rays, RenderSettings
from nerf_eval.scenes.scene import Scene


def time_render(pair: ModelPair, rays: Rays, settings: RenderSettings, repeats: int = 3,
                reference: ModelPair | None = None) -> PairedTiming:
    """Deterministic renders of `rays` by `pair`, timed interleaved with `reference` (default: `pair`
    itself) over `repeats` rounds after one warm-up call each (nerf_eval.measure's paired protocol)."""
    return time_render_pair(pair if reference is None else reference, pair, rays, settings,
                            PairedProtocol(rounds=repeats, warmup=1), name="variant")


def measure(name: str, pair: ModelPair, scene: Scene, views: list[int], settings: RenderSettings,
            latency_rays: Rays | None = None, repeats: int = 3, reference: ModelPair | None = None,
            spec: MeasurementSpec | None = None) -> tuple[Record, list[ViewRender]]:
    """Quality on `views`, size and render time of one pair (`nerf_eval.measure.quality`), and the latency
    of `latency_rays` timed interleaved with `reference` (the fp32 pair; default: the pair against
    itself). The record names `spec` when given (what it was measured on)."""
    res, ev = measure_quality(name, pair, scene, views, settings,
                              identity=spec.to_dict() if spec else None)
    if latency_rays is not None:
        res.take_timing(time_render(pair, latency_rays, settings, repeats, reference))
    return res, ev.renders


def finetuned_name(name: str, steps: int) -> str:
    return f"{name}, fine-tuned {steps} steps"


def run_variants(pair: ModelPair, scene: Scene, names: list[str], views: list[int], calibration: Rays,
                 settings: RenderSettings = RenderSettings(), latency_rays: Rays | None = None,
                 repeats: int = 3, progress: bool = True, finetune_steps: int = 0,
                 finetune_scene: Scene | None = None, finetune_rays: int = 1024,
                 finetune_only: tuple[str, ...] = ("*",), finetune_device: torch.device | str = "cpu",
                 finetune_bf16: bool | None = None, known: dict[str, Record] | None = None,
                 spec: MeasurementSpec | None = None
                 ) -> tuple[list[Record], dict[str, list[ViewRender]]]:
    """fp32 first, then each named compressor; a compressor that fails gets a row with its error.

    With `finetune_steps`, every variant whose result is a float NeRF pair (pruned models) also gets a
    second row after a recovery fine-tune of that many steps of `finetune_rays` rays on `finetune_scene`'s
    training views (the scene at its training resolution; default `scene`); `finetune_only` limits that to
    the variants whose names match one of its globs: post-training and fine-tuned results side by side.
    The fine-tune may run on `finetune_device` (e.g. a GPU), with bf16 autocast or not (`finetune_bf16`;
    None: where that device has native bf16); every variant is measured on the CPU.

    `known` holds rows measured by an earlier run with the same settings (by name): they are reused, not
    measured again, and keep the fp32 times of their own run (`baseline_time_s`), so every speed-up stays
    a side-by-side ratio. fp32 is always measured afresh. Each row records this run's fp32 times: the
    render time of fp32's own row, and the latency of fp32 timed interleaved with the row's variant
    (`repeats` rounds; see `measure`). Every row measured here names `spec` (what it was measured on)."""
    known = known or {}
    results, renders = [], {}
    base, base_renders = measure("fp32", pair, scene, views, settings, latency_rays, repeats, spec=spec)
    results.append(base)
    renders["fp32"] = base_renders

    def fresh(res: Record) -> Record:
        res.baseline_time_s = base.render_time_s  # baseline_latency_s: fp32 in the rounds paired with the row
        if res.name in renders:
            ref = {r.index: r.depth for r in base_renders}
            add_depth_change(res, [r.depth for r in renders[res.name]], [ref.get(r.index) for r in renders[res.name]])
        return res

    fresh(base)
    for name in tqdm([n for n in names if n != "fp32"], desc="compressors", disable=not progress):
        ft_name = finetuned_name(name, finetune_steps)
        wants_ft = bool(finetune_steps) and any(fnmatchcase(name, g) for g in finetune_only)
        if name in known and (not wants_ft or ft_name in known or known[name].error):
            results.append(known[name])
            if wants_ft and ft_name in known:
                results.append(known[ft_name])
            continue
        try:
            t0 = time.perf_counter()
            small = get_compressor(name).compress(pair, calibration)
            elapsed = time.perf_counter() - t0
            if name in known:
                res = known[name]
            else:
                res, renders[name] = measure(name, small, scene, views, settings, latency_rays, repeats, pair, spec)
                res.compress_time_s = elapsed
                fresh(res)
        except Exception as e:  # noqa: BLE001 - one failing compressor must not hide the others
            res, small = _failed(name, e), None
        results.append(res)
        if wants_ft and small is not None and all(map(is_float_nerf, small.networks().values())):
            try:
                t0 = time.perf_counter()
                tuned = finetune(small, finetune_scene or scene, finetune_steps, batch_rays=finetune_rays,
                                 progress=progress, device=finetune_device, bf16=finetune_bf16)
                elapsed += time.perf_counter() - t0
                res, renders[ft_name] = measure(ft_name, tuned, scene, views, settings, latency_rays, repeats,
                                                pair, spec)
                res.compress_time_s = elapsed
                fresh(res)
            except Exception as e:  # noqa: BLE001
                res = _failed(ft_name, e)
            results.append(res)
    return results, renders


def _failed(name: str, e: Exception) -> Record:
    line = first_line(e)
    traceback.clear_frames(e.__traceback__)
    return Record(name=name, error=f"{type(e).__name__}: {line}")

