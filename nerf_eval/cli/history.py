"""`nerf-eval history`: per-compressor trends across saved pytest-benchmark runs (table and plot)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nerf_eval.errors import NerfEvalError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="PSNR, worst view, size and latency per compressor across the saved "
                                       "pytest-benchmark runs of a storage: a table and a PNG trend plot")
    p.add_argument("--storage", type=Path, default=Path(".benchmarks"),
                   help="pytest-benchmark storage directory (default: .benchmarks)")
    p.add_argument("--plot", type=Path, default=Path("history.png"), help="trend plot to write (default: history.png)")
    p.add_argument("--force", action="store_true", help="replace an existing --plot file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nerf_eval.atomic import check_output_file
    from nerf_eval.history import HistoryError, history_table, load_runs, plot_history

    if args.plot.suffix.lower() != ".png":
        raise NerfEvalError(f"--plot {args.plot}: the trend plot is a PNG; give a file name ending in .png")
    check_output_file(args.plot, args.force, "trend plot")
    try:
        runs = load_runs(args.storage)
    except HistoryError as e:
        raise NerfEvalError(str(e)) from None
    print(history_table(runs))
    print(f"plot: {plot_history(runs, args.plot)}")
    return 0
