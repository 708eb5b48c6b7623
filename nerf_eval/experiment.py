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
from dataclasses import asdict, dataclass, field, fields
from fnmatch import fnmatchcase

import torch
from tqdm.auto import tqdm

from nerf_eval.compress import get_compressor, serialized_size
from nerf_eval.compress.finetune import finetune
from nerf_eval.errors import first_line
from nerf_eval.evaluate import ViewRender, evaluate
from nerf_eval.measure import PairedProtocol, PairedTiming, time_render_pair
from nerf_eval.model import ModelPair, count_parameters, is_float_nerf
from nerf_eval.render import Rays, RenderSettings
from nerf_eval.scenes.scene import Scene


@dataclass
class VariantResult:
    """One row of a results table (fp32 or a compressor).

    render_time_s: wall time of rendering the evaluated views (one pass, timed apart from fp32's).
    latency_s: median time of the latency batch, timed interleaved with fp32 (`baseline_latency_s`: fp32's
    median in the same rounds); latency_speedup: the median of the per-round fp32/variant ratios,
    latency_speedup_spread: their interquartile range, latency_rounds: how many rounds (fp32's own row:
    fp32 against itself).

    depth_change: mean |depth - fp32's depth| over the pixels of the evaluated views, in the scene's depth
    units (NDC depth for forward-facing captures, which is linear in disparity): how far compression moves
    the geometry where no true depth exists (real captures). size_fine_bytes: the fine network alone, the
    figure the reference report quotes (one network); size_bytes holds both."""

    name: str
    psnr: float = float("nan")
    ssim: float = float("nan")
    flip: float = float("nan")
    worst_psnr: float = float("nan")
    worst_view: int = -1
    depth_error: float = float("nan")
    depth_change: float = float("nan")
    sharpness: float = float("nan")
    size_bytes: int = 0
    size_fine_bytes: int = 0
    params: int = 0
    render_time_s: float = float("nan")
    latency_s: float = float("nan")
    compress_time_s: float = 0.0
    baseline_time_s: float = float("nan")
    baseline_latency_s: float = float("nan")
    latency_speedup: float = float("nan")
    latency_speedup_spread: float = float("nan")
    latency_rounds: int = 0
    views: list[int] = field(default_factory=list)
    per_view: list[dict] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "VariantResult":
        """A row read back from results.json (unknown keys ignored, missing ones at their defaults)."""
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


def time_render(pair: ModelPair, rays: Rays, settings: RenderSettings, repeats: int = 3,
                reference: ModelPair | None = None) -> PairedTiming:
    """Deterministic renders of `rays` by `pair`, timed interleaved with `reference` (default: `pair`
    itself) over `repeats` rounds after one warm-up call each (nerf_eval.measure's paired protocol)."""
    return time_render_pair(pair if reference is None else reference, pair, rays, settings,
                            PairedProtocol(rounds=repeats, warmup=1), name="variant")


def measure(name: str, pair: ModelPair, scene: Scene, views: list[int], settings: RenderSettings,
            latency_rays: Rays | None = None, repeats: int = 3, reference: ModelPair | None = None
            ) -> tuple[VariantResult, list[ViewRender]]:
    """Quality on `views`, serialized size, render time of one pair, and the latency of `latency_rays`
    timed interleaved with `reference` (the fp32 pair; default: the pair against itself)."""
    t0 = time.perf_counter()
    ev = evaluate(pair, scene, views, settings, progress=False)
    render_time = time.perf_counter() - t0
    m = ev.mean
    res = VariantResult(name=name, psnr=m["psnr"], ssim=m["ssim"], flip=m.get("flip", float("nan")),
                        worst_psnr=m["worst_psnr"], worst_view=views[m["worst_view"]],
                        depth_error=m.get("depth_error", float("nan")), sharpness=m["sharpness"],
                        size_bytes=serialized_size(pair), size_fine_bytes=serialized_size(pair.fine or pair.coarse),
                        params=sum(count_parameters(n) for n in pair.networks().values()),
                        render_time_s=render_time, views=list(views), per_view=ev.per_view)
    if latency_rays is not None:
        t = time_render(pair, latency_rays, settings, repeats, reference)
        res.latency_s, res.baseline_latency_s = t.latency_s, t.reference_latency_s
        res.latency_speedup, res.latency_speedup_spread, res.latency_rounds = t.speedup, t.spread, t.rounds
    return res, ev.renders


def depth_change(renders: list[ViewRender], reference: list[ViewRender]) -> tuple[float, list[float]]:
    """Mean |depth - reference depth| over all pixels of the views both rendered, and per view (in the
    order of `renders`; NaN for a view the reference lacks)."""
    ref = {r.index: r.depth for r in reference}
    per_view = [float((r.depth - ref[r.index]).abs().mean()) if r.index in ref else float("nan") for r in renders]
    known = [d for d in per_view if d == d]
    return (sum(known) / len(known) if known else float("nan")), per_view


def finetuned_name(name: str, steps: int) -> str:
    return f"{name}, fine-tuned {steps} steps"


def run_variants(pair: ModelPair, scene: Scene, names: list[str], views: list[int], calibration: Rays,
                 settings: RenderSettings = RenderSettings(), latency_rays: Rays | None = None,
                 repeats: int = 3, progress: bool = True, finetune_steps: int = 0,
                 finetune_scene: Scene | None = None, finetune_rays: int = 1024,
                 finetune_only: tuple[str, ...] = ("*",), finetune_device: torch.device | str = "cpu",
                 known: dict[str, VariantResult] | None = None
                 ) -> tuple[list[VariantResult], dict[str, list[ViewRender]]]:
    """fp32 first, then each named compressor; a compressor that fails gets a row with its error.

    With `finetune_steps`, every variant whose result is a float NeRF pair (pruned models) also gets a
    second row after a recovery fine-tune of that many steps of `finetune_rays` rays on `finetune_scene`'s
    training views (the scene at its training resolution; default `scene`); `finetune_only` limits that to
    the variants whose names match one of its globs: post-training and fine-tuned results side by side.
    The fine-tune may run on `finetune_device` (e.g. a GPU); every variant is measured on the CPU.

    `known` holds rows measured by an earlier run with the same settings (by name): they are reused, not
    measured again, and keep the fp32 times of their own run (`baseline_time_s`), so every speed-up stays
    a side-by-side ratio. fp32 is always measured afresh. Each row records this run's fp32 times: the
    render time of fp32's own row, and the latency of fp32 timed interleaved with the row's variant
    (`repeats` rounds; see `measure`)."""
    known = known or {}
    results, renders = [], {}
    base, base_renders = measure("fp32", pair, scene, views, settings, latency_rays, repeats)
    results.append(base)
    renders["fp32"] = base_renders

    def fresh(res: VariantResult) -> VariantResult:
        res.baseline_time_s = base.render_time_s  # baseline_latency_s: fp32 in the rounds paired with the row
        if res.name in renders:
            res.depth_change, per_view = depth_change(renders[res.name], base_renders)
            for row, d in zip(res.per_view, per_view):
                row["depth_change"] = d
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
                res, renders[name] = measure(name, small, scene, views, settings, latency_rays, repeats, pair)
                res.compress_time_s = elapsed
                fresh(res)
        except Exception as e:  # noqa: BLE001 - one failing compressor must not hide the others
            res, small = _failed(name, e), None
        results.append(res)
        if wants_ft and small is not None and all(map(is_float_nerf, small.networks().values())):
            try:
                t0 = time.perf_counter()
                tuned = finetune(small, finetune_scene or scene, finetune_steps, batch_rays=finetune_rays,
                                 progress=progress, device=finetune_device)
                elapsed += time.perf_counter() - t0
                res, renders[ft_name] = measure(ft_name, tuned, scene, views, settings, latency_rays, repeats,
                                                pair)
                res.compress_time_s = elapsed
                fresh(res)
            except Exception as e:  # noqa: BLE001
                res = _failed(ft_name, e)
            results.append(res)
    return results, renders


def _failed(name: str, e: Exception) -> VariantResult:
    line = first_line(e)
    traceback.clear_frames(e.__traceback__)
    return VariantResult(name=name, error=f"{type(e).__name__}: {line}")

