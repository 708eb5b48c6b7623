"""Model cards for shipped checkpoints: how a checkpoint was trained and what it measures.

A card records the checkpoint's sha256, the training command and settings, steps and wall time (from
the checkpoint's own training record), the held-out metrics at full samples (64 + 128), and a quick
check (two test views at half resolution) that the test suite recomputes to prove the card is true.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from nerf_eval.checkpoint import file_hash, load_checkpoint
from nerf_eval.evaluate import evaluate
from nerf_eval.hardware import machine_summary
from nerf_eval.measure.quality import measure_quality
from nerf_eval.measure.spec import MeasurementSpec, portable
from nerf_eval.model import count_parameters
from nerf_eval.render import RenderSettings
from nerf_eval.scenes import load_scene

QUICK_VIEWS = [0, 1]
QUICK_SCALE = 0.5
QUICK_PIXELS = 2500  # a quick-check view has at most this many pixels (50x50), whatever the scene's size


def quick_scale(width: int, height: int) -> float:
    """Half resolution, or less where that would exceed QUICK_PIXELS (a real capture at 504x378)."""
    return min(QUICK_SCALE, round(math.sqrt(QUICK_PIXELS / (width * height)), 4))


def quick_check(checkpoint: str | Path, scene_spec: str, scale: float | None = None) -> dict:
    """PSNR/SSIM on the first two test views at a small resolution, full samples (about a minute on 2 cores).

    `scale` is relative to the scene as loaded; by default `quick_scale` of its size. The card records the
    scale it used, and the test suite recomputes the check at that scale.
    """
    pair = load_checkpoint(checkpoint)
    full = load_scene(scene_spec)
    scale = quick_scale(full.width, full.height) if scale is None else scale
    scene = full.rescaled(scale)
    ev = evaluate(pair, scene, scene.subset("test", QUICK_VIEWS), RenderSettings(white_bkgd=scene.white_bkgd),
                  progress=False, with_flip=False)
    return {"views": QUICK_VIEWS, "scale": scale, "psnr": ev.mean["psnr"], "ssim": ev.mean["ssim"]}


def training_devices(history: list[dict]) -> dict[str, dict]:
    """Steps and training wall time per device, from a checkpoint's training record.

    Records are written every 25 steps with the cumulative wall time; records from before the trainer
    noted its device are CPU ones (it had no other).
    """
    out: dict[str, dict] = {}
    step, wall = 0, 0.0
    for rec in history:
        dev = out.setdefault(rec.get("device", "cpu"), {"steps": 0, "wall_time_s": 0.0})
        dev["steps"] += int(rec["step"]) - step
        dev["wall_time_s"] = round(dev["wall_time_s"] + float(rec["wall_time_s"]) - wall, 1)
        step, wall = int(rec["step"]), float(rec["wall_time_s"])
    return out


def build_card(checkpoint: str | Path, scene_spec: str, command: str, views: list[int] | None = None,
               scale: float = 1.0, notes: str = "") -> dict:
    """Measure a checkpoint on the held-out test split at `scale` and return the card as a dict.

    The test figures are a `nerf_eval.measure` Record (`test.record`, the record report rows and the
    plugin's records are, under a MeasurementSpec with no calibration or latency batch: a card neither
    compresses nor times); `test.mean` and `test.per_view` hold the same figures as earlier cards did.
    `notes` holds what a reader must know and the numbers cannot say (known limitations, how the
    recipe was chosen); it is printed under its own heading.
    """
    checkpoint = Path(checkpoint)
    pair = load_checkpoint(checkpoint)
    full = load_scene(scene_spec)
    scene = full.rescaled(scale)
    idx = scene.subset("test", views)
    settings = RenderSettings(white_bkgd=scene.white_bkgd)  # as evaluate and report render it
    sha256 = file_hash(checkpoint)
    spec = MeasurementSpec(scene=portable(scene_spec, Path.cwd()), checkpoint_sha256=sha256, views=tuple(idx),
                           scale=scale, width=scene.width, height=scene.height, n_coarse=settings.n_coarse,
                           n_fine=settings.n_fine, calibration_rays=0, latency_rays=0)
    record, ev = measure_quality(checkpoint.name, pair, scene, idx, settings, identity=spec.to_dict())
    meta = pair.meta
    history = meta.get("history", [])
    return {
        "checkpoint": checkpoint.name,
        "sha256": sha256,
        "scene": scene_spec,
        "source": scene.source,
        "splits": {k: list(v) for k, v in scene.splits.items()},
        "scale": scale,
        "resolution": [scene.width, scene.height],
        "command": command,
        "global_step": meta.get("global_step"),
        "wall_time_s": round(float(meta.get("wall_time_s", float("nan"))), 1),
        "train_config": meta.get("train_config", {}),
        "devices": training_devices(history),
        "final_train_psnr": next((h["train_psnr"] for h in reversed(history) if "train_psnr" in h), None),
        "parameters": {n: count_parameters(m) for n, m in pair.networks().items()},
        "config": pair.config.to_dict(),
        "test": {"views": idx, "samples": f"{settings.n_coarse}+{settings.n_fine}", "mean": ev.mean,
                 "per_view": ev.per_view, "record": record.to_dict()},
        "quick_check": quick_check(checkpoint, scene_spec, quick_scale(full.width, full.height)),
        "machine": machine_summary(),
        "notes": notes,
    }


def card_markdown(card: dict) -> str:
    m = card["test"]["mean"]
    tc = card["train_config"]
    fmt = lambda x, f=".2f": "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, f)  # noqa: E731
    devices = card.get("devices") or {}
    by_device = "; ".join(f"{d}: {v['steps']} steps, {v['wall_time_s'] / 60:.1f} min" for d, v in devices.items())
    return "\n".join([
        f"# Model card: {card['checkpoint']} ({card['scene']})",
        "",
        "Vanilla NeRF (coarse + fine, depth 8, width 256, skip at 4, view branch 128), fp32, trained with",
        "this project's `nerf-eval train`.",
        "",
        f"- sha256: `{card['sha256']}`",
        f"- command: `{card['command']}`",
        f"- steps: {card['global_step']} (warm start {tc.get('warmstart_steps', 0)}, photometric "
        f"{tc.get('steps')}), seed {tc.get('seed')}, wall time {card['wall_time_s'] / 60:.1f} min"
        + (f" ({by_device})" if by_device else ""),
        f"- training: {tc.get('batch_rays')} rays/step, {tc.get('n_coarse')}+{tc.get('n_fine')} samples, "
        f"bf16 autocast {tc.get('bf16')}, lr {tc.get('lr')} → {tc.get('lr_final')}",
        f"- resolution {card['resolution'][0]}×{card['resolution'][1]}, parameters {card['parameters']}",
        "",
        f"## Held-out test views ({len(card['test']['views'])} views, {card['test']['samples']} samples)",
        "",
        "| PSNR dB | SSIM | ꟻLIP | worst view PSNR dB | depth error | sharpness |",
        "|---|---|---|---|---|---|",
        f"| {fmt(m['psnr'])} | {fmt(m['ssim'], '.4f')} | {fmt(m.get('flip'), '.4f')} | {fmt(m['worst_psnr'])} | "
        f"{fmt(m.get('depth_error'), '.4f')} | {fmt(m.get('sharpness'), '.3f')} |",
        "",
        f"Measured on {card['machine']}. Quick check (test views {card['quick_check']['views']} at scale {card['quick_check']['scale']}): "
        f"PSNR {card['quick_check']['psnr']:.3f} dB, SSIM {card['quick_check']['ssim']:.4f}.",
        "",
        *_per_view_lines(card, fmt),
        *(["## Notes and known limitations", "", card["notes"], ""] if card.get("notes") else []),
    ])


def _per_view_lines(card: dict, fmt) -> list[str]:
    """Per-view metrics and the command that reproduces them (cards written before these fields: none)."""
    if "scale" not in card:
        return []
    reproduce = (f"nerf-eval evaluate --checkpoint {card['checkpoint']} --scene {card['scene']}"
                 + (f" --scale {card['scale']:g}" if card["scale"] != 1.0 else ""))
    lines = [f"Data: `{card['source']}`, splits {', '.join(f'{k} {len(v)} views' for k, v in card['splits'].items())} "
             f"(test views {card['test']['views']}). Reproduce with `{reproduce}` (checkpoint path as shipped).",
             "", "| view | PSNR dB | SSIM | ꟻLIP | depth error | sharpness |", "|---|---|---|---|---|---|"]
    for view, m in zip(card["test"]["views"], card["test"]["per_view"]):
        lines.append(f"| {view} | {fmt(m['psnr'])} | {fmt(m['ssim'], '.4f')} | {fmt(m.get('flip'), '.4f')} | "
                     f"{fmt(m.get('depth_error'), '.4f')} | {fmt(m.get('sharpness'), '.3f')} |")
    return [*lines, ""]


CARD_FILES = ("model_card.json", "model_card.md")


def write_card(card: dict, out_dir: str | Path) -> None:
    """model_card.json and model_card.md into the run directory, both or neither (an interrupt leaves the
    previous card whole); the run's other files stay."""
    from nerf_eval.atomic import atomic_files_into

    with atomic_files_into(Path(out_dir)) as tmp:
        (tmp / CARD_FILES[0]).write_text(json.dumps(card, indent=1, default=float))
        (tmp / CARD_FILES[1]).write_text(card_markdown(card))
