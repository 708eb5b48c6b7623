"""Argument checks several `nerf-eval` commands share: each turns a bad value into a one-line
NerfEvalError before any work starts (the scene help text, output directories, devices, numeric ranges,
view lists, sample counts)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from nerf_eval.errors import NerfEvalError

if TYPE_CHECKING:
    import torch

SCENE_HELP = ("built-in name, Blender/LLFF directory or .npz, optionally with loader settings after a colon, "
              "e.g. DIR:factor=4,llffhold=8,ndc=false (LLFF: factor, llffhold, ndc, recenter, bd_factor, spherify, "
              "val; Blender: white_bkgd, half_res, near, far; .npz: near, far, white_bkgd; built-in: seed, size)")


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse an output directory that is a file, or that holds files when --force is not given."""
    if out.exists() and not out.is_dir():
        raise NerfEvalError(f"{out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise NerfEvalError(f"{out}: directory exists and is not empty; refusing to write (use --force)")


def parse_device(name: str, flag: str = "--device") -> torch.device:
    """`--device` as a torch.device, or a one-line error when it is not usable here."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise NerfEvalError(f"{flag} {name}: not a device name (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NerfEvalError(f"{flag} {name}: CUDA is not available to this torch ({torch.__version__})")
    if device.type not in ("cpu", "cuda"):
        raise NerfEvalError(f"{flag} {name}: only cpu and cuda are supported")
    return device


FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max, without importing torch here
_RANGES = {
    "count": (lambda v: v >= 1, "must be at least 1"),
    "nonnegative": (lambda v: v >= 0, "must be >= 0"),
    "positive": (lambda v: v > 0, "must be > 0"),
    "fraction": (lambda v: 0.0 < v <= 1.0, "must be in (0, 1]"),
    "learning_rate": (lambda v: 0 < v <= FLOAT32_MAX, "must be > 0 and within float32's range"),
    # more torch threads than CPUs only makes the threads wait on each other (and a huge count fails to allocate)
    "threads": (lambda v: 1 <= v <= (os.cpu_count() or 1),
                f"must be between 1 and this machine's {os.cpu_count() or 1} CPUs"),
}


def require(args: argparse.Namespace, **ranges: str) -> None:
    """One-line errors for numeric options out of range, e.g. `require(args, scale="fraction", repeats="count")`;
    an option left at None is not checked."""
    for dest, kind in ranges.items():
        value = getattr(args, dest)
        ok, rule = _RANGES[kind]
        if value is not None and not math.isfinite(value):  # argparse's float() takes 'inf' and 'nan'
            raise NerfEvalError(f"--{dest.replace('_', '-')} {value:g}: not a finite number")
        if value is not None and not ok(value):
            shown = f"{value:g}" if isinstance(value, float) else str(value)  # an int as given, not 1e+09
            raise NerfEvalError(f"--{dest.replace('_', '-')} {shown}: {rule}")


def parse_views(text: str | None) -> list[int] | None:
    """`--views 0,8,16` as view positions; None (all views) when the option is not given."""
    if text is None:
        return None
    try:
        views = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NerfEvalError(f"--views {text!r}: expected comma-separated view positions, e.g. 0,8,16") from None
    if not views:
        raise NerfEvalError(f"--views {text!r}: no view positions given")
    return views


def check_samples(args: argparse.Namespace) -> None:
    """--n-coarse / --n-fine as the sampler needs them (train and evaluate)."""
    from nerf_eval.render import sample_count_problem

    problem = sample_count_problem(args.n_coarse, args.n_fine)
    if problem is not None:
        raise NerfEvalError(f"--n-coarse {args.n_coarse} / --n-fine {args.n_fine}: {problem}")
