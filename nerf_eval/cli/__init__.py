"""`nerf-eval` command line: scene, train, evaluate, compress, autocompress, render, report, card, roofline.

Every subcommand turns a bad input into one line on stderr and a non-zero exit code. Each command is a
module of this package with `add_parser(sub)` (its options) and `run(args)` (the work, importing the
heavy libraries it needs only when it runs); the checks several commands share are in `arguments`.
"""

from __future__ import annotations

import argparse
import sys

from nerf_eval.cli import (autocompress, card, compress, evaluate, history, render, report, roofline, scene,
                           train)
from nerf_eval.errors import NerfEvalError, out_of_memory
from nerf_eval.interrupt import stop_requests

COMMANDS = (scene, train, evaluate, compress, autocompress, render, report, card, history, roofline)


def build_parser() -> argparse.ArgumentParser:
    """The `nerf-eval` parser: one subcommand per module of COMMANDS, whose `run` becomes `args.func`."""
    parser = argparse.ArgumentParser(prog="nerf-eval", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `nerf-eval` command; its exit code (2 for a bad input, 130 when interrupted)."""
    from nerf_eval.memory import keep_freed_memory

    try:
        with stop_requests():  # Ctrl-C and `kill` stop a command at its next stop point
            parser = build_parser()  # imports the training code: a signal may come this early
            args = parser.parse_args(argv)
            keep_freed_memory()
            return int(args.func(args) or 0)
    except NerfEvalError as e:
        _error_line(str(e))
        return 2
    except (MemoryError, RuntimeError) as e:
        message = out_of_memory(e)
        if message is None:
            raise
        _error_line(message)
        return 2
    except KeyboardInterrupt:  # commands that write outputs catch it themselves (`nerf_eval.interrupt.interruptible`)
        print("nerf-eval: interrupted", file=sys.stderr)
        return 130


def _error_line(message: str) -> None:
    """Print the error on a line of its own: tqdm.write clears a progress bar the failed work left open
    (the bar is redrawn below it), where a plain print would append the error to the bar's line."""
    from tqdm.auto import tqdm

    tqdm.write(f"nerf-eval: error: {message}", file=sys.stderr)
