"""Command-line options and ini keys of the plugin, and their resolved values for one session.

Every option `--nerf-x-y` has the ini key `nerf_x_y`; the command line wins over the ini file, and
`--nerf-quick` changes only the defaults (an explicit value always wins). Relative paths, wherever they
are given, are taken from the rootdir (as the default checkpoint path is), so a run started from a
subdirectory measures the same files. A value of the wrong form is a one-line usage error at
configuration time, before anything is collected. Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

DEFAULT_SCENE = "object"
CHECKPOINT_PATTERN = "checkpoints/{scene}/checkpoint.pt"
MISSING_BASELINE_POLICIES = ("warn", "fail", "skip")

# name: (help, normal default, quick default); all are plain strings on the command line.
VALUE_OPTIONS: dict[str, tuple[str, str, str]] = {
    "scene": ("scene: built-in name, Blender/LLFF directory or .npz file (relative paths: to the rootdir)",
              DEFAULT_SCENE, DEFAULT_SCENE),
    "checkpoint": ("float checkpoint of the scene (relative paths: to the rootdir)", "", ""),
    "compressors": ("compressors to run: comma-separated names or globs", "", ""),
    "views": ("test views: a count (spread over the test split), positions '0,8' or 'all'", "2", "1"),
    "scale": ("resolution scale of the evaluation views, in (0, 1]", "0.5", "0.5"),
    "samples": ("coarse,fine samples per ray for evaluation and latency", "64,128", "64,128"),
    "max-psnr-drop": ("default gate: allowed PSNR drop in dB below fp32 in the same run", "", ""),
    "report-dir": ("write results.json and the rendered views here (relative paths: to the rootdir)", "", ""),
    "latency-rays": ("rays in the fixed latency batch", "128", "128"),
    "latency-rounds": ("rounds of the latency batch timed interleaved with fp32 (the speed-up is the median of "
                       "the per-round ratios)", "9", "9"),
    "latency-threads": ("torch threads while timing (0: all torch uses). One thread keeps the speed-up steady on a "
                        "shared machine, where a preempted thread stalls every parallel region of a call",
                        "1", "1"),
    "calibration-rays": ("calibration rays (training views) handed to compressors", "2048", "1024"),
    "device": ("where models render: cpu, or cuda / cuda:N where a GPU is (compression and int8 stay on the CPU)",
               "cpu", "cpu"),
    "missing-baseline": ("what a --benchmark-compare without a comparable saved benchmark does: "
                         "warn, fail or skip", "warn", "warn"),
}
SHOWN_DEFAULTS = {"checkpoint": "checkpoints/<scene name>/checkpoint.pt", "compressors": "all registered",
                  "max-psnr-drop": "no gate", "report-dir": "no report"}
LIST_OPTIONS: dict[str, str] = {
    "gate": "default gate, repeatable: 'psnr_drop=0.3', 'size_ratio=0.5', 'psnr>=30', 'size<=2MB'",
    "compare-fail": "quality regression vs the --benchmark-compare run, repeatable: 'psnr:0.1', "
                    "'ssim:0.005', 'size:2%%', 'speedup:10%%', 'latency:20%%' (default psnr:0.1 and size:0, which "
                    "fail, and latency:20%% and speedup:20%%, which only warn; any given expression fails)",
}

FLAG_OPTIONS: dict[str, str] = {
    "quick": "quick mode: 1 view instead of 2, 1024 calibration rays instead of 2048 (the latency batch and "
             "its timing are the same)",
    "accept": "let --benchmark-autosave/--benchmark-save keep a run whose quality gates failed, as the "
              "next baseline (like pytest-regressions' --force-regen)",
    "cross-scene": "measure a checkpoint on a scene other than the one it records that it was trained on "
                   "(otherwise that is an error)",
}


def ini_name(option: str) -> str:
    return "nerf_" + option.replace("-", "_")


def add_options(parser: pytest.Parser) -> None:
    """Register the options under their own group, each with a matching ini key."""
    group = parser.getgroup("nerfcompress", "NeRF compression benchmarks and quality gates")
    for name, (text, normal, quick) in VALUE_OPTIONS.items():
        shown = SHOWN_DEFAULTS.get(name, normal)
        extra = f", quick: {quick}" if quick != normal else ""
        group.addoption(f"--nerf-{name}", dest=ini_name(name), default=None, metavar="VALUE",
                        help=f"{text} (default: {shown}{extra}; ini: {ini_name(name)})")
        parser.addini(ini_name(name), text.replace("%%", "%"), type="string", default="")
    for name, text in LIST_OPTIONS.items():
        group.addoption(f"--nerf-{name}", dest=ini_name(name), action="append", default=None,
                        metavar="EXPR", help=f"{text} (ini: {ini_name(name)}, one per line)")
        parser.addini(ini_name(name), text.replace("%%", "%"), type="linelist", default=[])
    for name, text in FLAG_OPTIONS.items():
        group.addoption(f"--nerf-{name}", dest=ini_name(name), action="store_true", default=None,
                        help=f"{text} (ini: {ini_name(name)})")
        parser.addini(ini_name(name), text, type="bool", default=False)


@dataclass(frozen=True)
class NerfOptions:
    """The resolved settings of one session, with the place each path is relative to."""

    scene: str
    checkpoint: Path
    checkpoint_is_default: bool
    compressors: tuple[str, ...]
    views: str
    scale: float
    n_coarse: int
    n_fine: int
    max_psnr_drop: float | None
    report_dir: Path | None
    latency_rays: int
    latency_rounds: int
    calibration_rays: int
    latency_threads: int
    missing_baseline: str
    gates: tuple[str, ...]
    compare_fail: tuple[str, ...]
    quick: bool
    accept: bool = False
    cross_scene: bool = False
    device: str = "cpu"


def _raw(config: pytest.Config, name: str, quick: bool) -> tuple[str, str]:
    """(value, where it came from: 'cli', 'ini' or 'default')."""
    key = ini_name(name)
    value = config.getoption(key)
    if value is not None:
        return str(value), "cli"
    value = config.getini(key)
    if value:
        return str(value), "ini"
    _, normal, quick_default = VALUE_OPTIONS[name]
    return (quick_default if quick else normal), "default"


def _number(name: str, value: str, kind: type, low: float, high: float | None = None):
    """`value` as an int or a finite float in [low, inf), or in (low, high] when `high` is given."""
    try:
        x = kind(value)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise pytest.UsageError(f"--nerf-{name}={value!r}: not {expected}") from None
    if not math.isfinite(x):
        raise pytest.UsageError(f"--nerf-{name}={value!r}: not a finite number")
    if (x < low) if high is None else not low < x <= high:
        bound = f"in ({low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise pytest.UsageError(f"--nerf-{name}={value!r}: must be {bound}")
    return x


def _threads(value: str) -> int:
    """--nerf-latency-threads: 0 (all torch uses) up to the machine's CPU count; more threads than CPUs
    only wait on each other, and a huge count fails to allocate."""
    threads = _number("latency-threads", value, int, 0)
    if threads > (os.cpu_count() or 1):
        cpus = os.cpu_count() or 1
        raise pytest.UsageError(f"--nerf-latency-threads={value!r}: more than this machine's {cpus} CPUs")
    return threads


def _path(config: pytest.Config, value: str) -> Path:
    """`value` as an absolute path: relative ones are taken from the rootdir, from the command line as
    from the ini file, so the help's one rule holds whatever directory pytest is started in."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else config.rootpath / p


def _flag(config: pytest.Config, name: str) -> bool:
    return bool(config.getoption(ini_name(name)) or config.getini(ini_name(name)))


def check_views_form(spec: str) -> None:
    """Refuse a --nerf-views value that no scene could read ('a,b', '0', '-1,2'); whether the positions
    exist in the scene's test split is checked once the scene is loaded."""
    spec = spec.strip()
    if spec == "all":
        return
    try:
        if "," in spec:
            positions = [int(s) for s in spec.split(",") if s.strip()]
            ok = bool(positions) and min(positions) >= 0
        else:
            ok = int(spec) >= 1
    except ValueError:
        ok = False
    if not ok:
        raise pytest.UsageError(f"--nerf-views={spec!r}: expected a count >= 1, positions >= 0 like '0,8' "
                                "(one position: '5,') or 'all'")


def resolve(config: pytest.Config) -> NerfOptions:
    """Read every option (command line over ini over defaults) and check its form."""
    quick = _flag(config, "quick")
    raw = {name: _raw(config, name, quick) for name in VALUE_OPTIONS}
    scene = raw["scene"][0]
    if "/" in scene or scene.endswith(".npz") or Path(scene).suffix:
        scene = str(_path(config, scene))
    ckpt, ckpt_where = raw["checkpoint"]
    if not ckpt:
        ckpt = CHECKPOINT_PATTERN.format(scene=scene_name(scene))
    samples = raw["samples"][0].split(",")
    if len(samples) != 2:
        raise pytest.UsageError(f"--nerf-samples={raw['samples'][0]!r}: expected 'COARSE,FINE', e.g. 64,128")
    n_coarse = _number("samples", samples[0], int, 0)  # what the renderer needs is checked with the target
    n_fine = _number("samples", samples[1], int, 0)
    policy = raw["missing-baseline"][0]
    if policy not in MISSING_BASELINE_POLICIES:
        raise pytest.UsageError(f"--nerf-missing-baseline={policy!r}: choose one of "
                                f"{', '.join(MISSING_BASELINE_POLICIES)}")
    drop = raw["max-psnr-drop"][0]
    report = raw["report-dir"][0]
    check_views_form(raw["views"][0])
    device = raw["device"][0].strip()
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise pytest.UsageError(f"--nerf-device={device!r}: expected cpu, cuda or cuda:N")
    lists = {}
    for name in LIST_OPTIONS:
        cli = config.getoption(ini_name(name))
        lists[name] = tuple(cli if cli is not None else config.getini(ini_name(name)))
    return NerfOptions(
        scene=scene,
        checkpoint=_path(config, ckpt),
        checkpoint_is_default=ckpt_where == "default",
        compressors=tuple(s.strip() for s in raw["compressors"][0].split(",") if s.strip()),
        views=raw["views"][0].strip(),
        scale=_number("scale", raw["scale"][0], float, 0.0, 1.0),
        n_coarse=n_coarse,
        n_fine=n_fine,
        max_psnr_drop=_number("max-psnr-drop", drop, float, 0.0) if drop else None,
        report_dir=_path(config, report) if report else None,
        latency_rays=_number("latency-rays", raw["latency-rays"][0], int, 1),
        latency_rounds=_number("latency-rounds", raw["latency-rounds"][0], int, 1),
        calibration_rays=_number("calibration-rays", raw["calibration-rays"][0], int, 1),
        latency_threads=_threads(raw["latency-threads"][0]),
        missing_baseline=policy,
        device=device,
        gates=lists["gate"],
        compare_fail=lists["compare-fail"],
        quick=quick,
        accept=_flag(config, "accept"),
        cross_scene=_flag(config, "cross-scene"),
    )


def scene_name(spec: str) -> str:
    """A short name for a scene spec: the built-in name, or the directory/file name without suffix."""
    return Path(spec).stem if ("/" in spec or Path(spec).suffix) else spec
