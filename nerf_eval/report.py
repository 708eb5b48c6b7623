"""Results reports: a Markdown table in the reference report's format, JSON, an image grid and
trade-off plots. Reports are written to a temporary directory and moved into place at the end, so a
killed run leaves no half-written report, and an existing report is never replaced unless asked.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from nerf_eval.errors import NerfEvalError
from nerf_eval.measure.record import Record

REFERENCE = [  # the course report "Efficient 3D Reconstruction" (vanilla NeRF, LLFF average)
    {"variant": "original fp32", "psnr": 26.50, "time": "10.2 min/scene", "size_mb": 2.27},
    {"variant": "int8 both nets", "psnr": 21.17, "time": "6.83 min (-33%)", "size_mb": 1.24},
    {"variant": "int8 fine only", "psnr": 22.44, "time": "8.12 min", "size_mb": 1.76},
    {"variant": "int8 coarse only", "psnr": 22.17, "time": "8.23 min", "size_mb": 1.76},
    {"variant": "pruned 15%", "psnr": 23.93, "time": "-", "size_mb": 1.99},
    {"variant": "pruned 30%", "psnr": 23.93, "time": "-", "size_mb": 1.72},
    {"variant": "pruned 50%", "psnr": 22.61, "time": "-", "size_mb": 1.34},
    {"variant": "pruned 85%", "psnr": 22.5, "time": "-", "size_mb": 0.75},
]


def _f(x, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _pct(new, old) -> str:
    if new is None or old in (None, 0) or not all(math.isfinite(v) for v in (new, old)):
        return "-"
    return f"{100.0 * (new - old) / old:+.0f}%"


BASELINE_KEYS = {"render_time_s": "baseline_time_s", "latency_s": "reference_latency_s"}


def speedup(row: dict, base: dict | None, time_key: str = "render_time_s") -> float:
    """fp32 time / this row's time, with the fp32 time measured in the same run as the row: its own
    `baseline_*` field when it has one (rows reused from an earlier run), else the fp32 row's."""
    t = row.get(time_key)
    bt = row.get(BASELINE_KEYS.get(time_key, ""))
    if bt is None or not math.isfinite(bt):
        bt = base.get(time_key) if base else None
    ok = all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (t, bt))
    return bt / t if ok else float("nan")


def markdown_table(rows: list[dict], time_key: str = "render_time_s") -> str:
    """The reference report's table: variant, PSNR (and change), SSIM, FLIP, sharpness ratio (PSNR hides
    blur), worst view, depth error (against true depth) and depth change (against fp32's depth), render
    time and size (both networks, and the fine one alone as the reference report quotes it) with their %
    changes against the fp32 row, and the paired latency speed-up. The render-time speed-up is sequential (each
    model's views rendered one model after another, as the quality pass renders them), so the load of a
    shared machine can skew it; the paired column is the one to trust there."""
    base = next((r for r in rows if r["name"] == "fp32"), rows[0] if rows else None)
    cols = ("variant", "PSNR dB", "ΔPSNR", "SSIM", "ꟻLIP", "sharpness", "worst view dB", "depth err",
            "Δdepth vs fp32", "render time s", "Δtime", "speed-up (sequential)", "paired speed-up (IQR)", "size MB",
            "one net MB", "Δsize")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['name']} | failed: {r['error']} |" + " |" * (len(cols) - 2))
            continue
        dpsnr = r["psnr"] - base["psnr"] if base else float("nan")
        t = r.get(time_key)
        speed = speedup(r, base, time_key)
        bt = t * speed if math.isfinite(speed) else None
        lines.append(
            f"| {r['name']} | {_f(r['psnr'], '.2f')} | {_f(dpsnr, '+.2f')} | {_f(r['ssim'], '.4f')} | "
            f"{_f(r.get('flip'), '.4f')} | {_f(r.get('sharpness'), '.3f')} | {_f(r.get('worst_psnr'), '.2f')} | "
            f"{_f(r.get('depth_error'), '.4f')} | {_f(r.get('depth_change'), '.4f')} | "
            f"{_f(t, '.2f')} | {_pct(t, bt)} | {_f(speed, '.2f')}× | {_paired(r)} | {_f(r['size_bytes'] / 1e6, '.2f')} | "
            f"{_mb(r.get('size_fine_bytes'))} | {_pct(r['size_bytes'], base['size_bytes'] if base else None)} |")
    return "\n".join(lines) + "\n"


def _mb(size: int | None) -> str:
    return f"{size / 1e6:.2f}" if isinstance(size, int) and size > 0 else "-"


def paired_speedup(row: dict) -> tuple[float | None, float | None]:
    """A row's paired speed-up and its interquartile range, read as a `Record` (so under the names
    earlier reports used too); None for what the row lacks or holds as a non-finite number."""
    rec = Record.from_dict(row)
    return rec.speedup, rec.speedup_spread


def _paired(row: dict) -> str:
    """The latency batch's speed-up over fp32 timed interleaved with it (median of per-round ratios) and the
    interquartile range of those ratios; '-' for rows measured before paired timing existed."""
    sp, iqr = paired_speedup(row)
    if sp is None:
        return "-"
    return f"{sp:.2f}× ({iqr:.2f})" if iqr is not None else f"{sp:.2f}×"


def reference_table() -> str:
    lines = ["| variant (reference report) | PSNR dB | render time | size MB |", "|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['psnr']:.2f} | {r['time']} | {r['size_mb']:.2f} |" for r in REFERENCE]
    return "\n".join(lines) + "\n"


FINETUNED_SEPARATOR = ", "  # a fine-tuned row is labelled "NAME, fine-tuned N steps" (experiment.finetuned_name)


def series_of(name: str) -> tuple[str, float] | None:
    """('prune-activation', 0.3) for 'prune-activation:0.3' and ('prune-activation, fine-tuned 100 steps',
    0.3) for its fine-tuned row: a compressor swept over one numeric parameter (its only parameter given is
    a positional number); None for other names and compositions. A name the registry does not know (a
    report's row of a compressor not installed here) is read as a base name and one positional number."""
    from nerf_eval.compress import REGISTRY, CompressorSpec, Param
    from nerf_eval.compress.params import parse_spec
    from nerf_eval.errors import CompressorError

    def params_of(base: str) -> tuple[Param, ...]:
        try:
            return REGISTRY.params_of(base)
        except CompressorError:
            return (Param("value", float, positional=True),)

    head, sep, rest = name.partition(FINETUNED_SEPARATOR)  # the row label of a fine-tuned variant
    try:
        spec = parse_spec(head, params_of)
    except CompressorError:
        return None
    if not isinstance(spec, CompressorSpec) or len(spec.given) != 1:
        return None
    (key, value), = spec.given
    param = spec.param(key)
    if not param.positional or param.type not in (int, float):
        return None
    return (spec.base + sep + rest, float(value))


def tradeoff_plot(rows: list[dict], path: Path, time_key: str = "render_time_s") -> None:
    """PSNR vs size and PSNR vs speed-up. A compressor measured at several values of one parameter
    (a pruning ratio sweep) is one line with a legend entry; other variants are labelled points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if not r.get("error")]
    base = next((r for r in ok if r["name"] == "fp32"), None)

    def row_speedup(r: dict) -> float | None:
        """The paired speed-up (timed interleaved with fp32) where the row has one; else the ratio of
        render-pass times, which were taken minutes apart and read the machine's load as speed."""
        paired = paired_speedup(r)[0]
        if paired is not None and paired > 0:
            return paired
        sp = speedup(r, base, time_key)
        return sp if math.isfinite(sp) else None

    groups: dict[str, list[tuple[float, dict]]] = {}
    for r in ok:
        key = series_of(r["name"])
        if key:
            groups.setdefault(key[0], []).append((key[1], r))
    series = {k: sorted(v, key=lambda p: p[0]) for k, v in groups.items() if len(v) > 1}
    in_series = {id(r) for v in series.values() for _, r in v}
    fig, axes = plt.subplots(1, 2, figsize=(13 if series else 11, 4.8))
    rules = list(dict.fromkeys(label.split(", ")[0] for label in series))
    palette = plt.get_cmap("tab10" if len(rules) <= 10 else "tab20")
    for label, points in series.items():
        style = "--" if ", " in label else "-"  # one colour per rule; dashed: its fine-tuned rows
        color = palette(rules.index(label.split(", ")[0]) % palette.N)
        xs_size = [r["size_bytes"] / 1e6 for _, r in points]
        axes[0].plot(xs_size, [r["psnr"] for _, r in points], style, marker="o", ms=4, label=label, color=color)
        timed = [(row_speedup(r), r["psnr"]) for _, r in points if row_speedup(r)]
        if timed:
            axes[1].plot(*zip(*timed), style, marker="o", ms=4, color=color)
    for r in ok:
        if id(r) in in_series:
            continue
        axes[0].scatter(r["size_bytes"] / 1e6, r["psnr"], s=30, color="black" if r is base else None)
        axes[0].annotate(r["name"], (r["size_bytes"] / 1e6, r["psnr"]), fontsize=7, xytext=(3, 3),
                         textcoords="offset points")
        if (sp := row_speedup(r)) is not None:
            axes[1].scatter(sp, r["psnr"], s=30, color="black" if r is base else None)
            axes[1].annotate(r["name"], (sp, r["psnr"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes[0].set(xlabel="serialized size (MB)", ylabel="PSNR (dB)", title="PSNR vs size")
    axes[1].set(xlabel="speed-up vs fp32 (paired: timed interleaved in one run)", ylabel="PSNR (dB)",
                title="PSNR vs speed-up")
    for ax in axes:
        ax.grid(alpha=0.3)
    if series:
        fig.legend(loc="center right", fontsize=7, title="swept over the ratio", title_fontsize=7)
        fig.tight_layout(rect=(0, 0, 0.78, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def image_grid(gt: dict[int, np.ndarray], renders: dict[str, dict[int, dict]], views: list[int],
               path: Path, gt_depth: dict[int, np.ndarray] | None = None) -> None:
    """Rows = variants (ground truth, fp32, each compressor); for each view: image, error heat-map, depth,
    and |depth - fp32's depth| (where compression moves the geometry; real captures have no true depth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(renders)
    k = 4  # panels per view
    cols = k * len(views)
    fig, axes = plt.subplots(len(names) + 1, cols, figsize=(1.9 * cols, 1.9 * (len(names) + 1)), squeeze=False)
    depths = [d for n in names for v in views if (d := renders[n].get(v, {}).get("depth")) is not None]
    finite = np.concatenate([d[np.isfinite(d)].ravel() for d in depths]) if depths else np.array([0.0, 1.0])
    dmin, dmax = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    drange = max(float(dmax - dmin), 1e-6)
    ref = renders.get("fp32", {})
    for j, v in enumerate(views):
        axes[0, k * j].imshow(gt[v].clip(0, 1))
        axes[0, k * j].set_title(f"ground truth, view {v}", fontsize=7)
        if gt_depth is not None and v in gt_depth:
            axes[0, k * j + 2].imshow(np.where(np.isfinite(gt_depth[v]), gt_depth[v], np.nan), cmap="viridis",
                                      vmin=dmin, vmax=dmax)
            axes[0, k * j + 2].set_title("true depth", fontsize=7)
        for i, n in enumerate(names, start=1):
            r = renders[n].get(v)
            if r is None:
                continue
            err = np.abs(r["rgb"] - gt[v]).mean(-1)
            psnr = -10 * math.log10(max(float(((r["rgb"] - gt[v]) ** 2).mean()), 1e-12))
            axes[i, k * j].imshow(r["rgb"].clip(0, 1))
            axes[i, k * j].set_title(f"{n} {psnr:.2f} dB", fontsize=7)
            axes[i, k * j + 1].imshow(err, cmap="inferno", vmin=0, vmax=0.25)
            axes[i, k * j + 1].set_title("|error| (0-0.25)", fontsize=7)
            axes[i, k * j + 2].imshow(r["depth"], cmap="viridis", vmin=dmin, vmax=dmax)
            axes[i, k * j + 2].set_title("depth", fontsize=7)
            if n != "fp32" and v in ref:
                change = np.abs(r["depth"] - ref[v]["depth"])
                axes[i, k * j + 3].imshow(change, cmap="magma", vmin=0, vmax=0.1 * drange)
                axes[i, k * j + 3].set_title(f"|Δdepth| vs fp32 (0-10%) {np.nanmean(change):.3f}", fontsize=6)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def refuse_to_replace(out: Path, overwrite: bool) -> None:
    """One-line error when `out` holds something (a file, or a non-empty directory) and `overwrite` is off,
    or when it cannot be created (an ancestor is a file, or not writable): checked before any work."""
    from nerf_eval.atomic import check_parent

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise NerfEvalError(f"{out}: exists and is not an empty directory; refusing to overwrite (use --force)")
    check_parent(out, "report directory")


@contextlib.contextmanager
def atomic_directory(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary sibling directory to write into; when the block ends normally it replaces `out`.

    The old `out` is renamed aside before the new one is renamed in and deleted only after, with
    SIGINT/SIGTERM held back meanwhile (`nerf_eval.atomic.atomic_directory_swap`): a killed, failed or
    interrupted run leaves `out` as it was (or complete and new) and no temporary directory."""
    from nerf_eval.atomic import atomic_directory_swap

    refuse_to_replace(out, overwrite)
    with atomic_directory_swap(Path(out)) as tmp:
        yield tmp


def write_report(rows: list[dict], out_dir: str | Path, settings: dict | None = None,
                 grid: dict | None = None, overwrite: bool = False, title: str = "Results",
                 keep_files: tuple[Path, ...] = ()) -> Path:
    """Write results.md, results.json, tradeoff.png (and grid.png when `grid` holds renders) atomically;
    `keep_files` (from an earlier report) are copied in unless this call writes a file of the same name.

    `grid` = {"gt": {view: rgb}, "gt_depth": {view: depth} | None, "renders": {name: {view: {rgb, depth}}},
    "views": [worst, typical]}.
    """
    out = Path(out_dir)
    with atomic_directory(out, overwrite) as tmp:
        md = [f"# {title}\n"]
        if settings:
            plain = {k: v for k, v in settings.items() if not isinstance(v, (dict, list))}  # the rest: results.json
            md.append("Settings: " + ", ".join(f"{k}={v}" for k, v in plain.items()) + "\n")
        md += [markdown_table(rows), "\nReference report (vanilla NeRF, for comparison):\n", reference_table()]
        (tmp / "results.md").write_text("\n".join(md))
        (tmp / "results.json").write_text(json.dumps({"settings": settings or {}, "results": rows}, indent=1,
                                                     default=float))
        tradeoff_plot(rows, tmp / "tradeoff.png")
        if grid:
            image_grid(grid["gt"], grid["renders"], grid["views"], tmp / "grid.png", grid.get("gt_depth"))
        for f in keep_files:
            if f.is_file() and not (tmp / f.name).exists():
                shutil.copy2(f, tmp / f.name)
    return out
