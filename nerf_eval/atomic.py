"""Writing outputs so that an interrupt never leaves half a file, loses the old one, or leaves temporaries.

Three rules, used by checkpoints, compressed models, reports and evaluate's JSON:

* output locations are checked before any work (`check_output_file`, `check_output_dir`), so a
  long render never ends in "parent is not a directory";
* new content goes to a hidden temporary sibling first and is swapped in at the end: a file with one
  `os.replace` (atomic), a directory by renaming the old one aside, renaming the new one in, then
  deleting the old one, so at every instant the destination (or its aside copy, restored on failure)
  holds a complete version;
* the short critical sections (create a temporary and enter its cleanup, the swap, the cleanup) run
  with SIGINT and SIGTERM held back (`deferred_signals`): a signal arriving then takes effect right
  after, so nothing is left half-swapped and no temporary escapes its cleanup.

`interruptible` makes SIGTERM behave like Ctrl-C in a command and turns both into one line and exit 130.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from nerf_eval.errors import NerfEvalError

_HELD = (signal.SIGINT, signal.SIGTERM)
F = TypeVar("F", bound=Callable[..., int])


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the duration of the block; they take effect when it ends.

    For short critical sections only (a rename, a cleanup): a Ctrl-C then arrives a moment later
    instead of in the middle. Python runs signal handlers in the main thread only, so the handlers are
    swapped for one that notes the signal, and the previous handler is called for it afterwards (a
    thread mask would not do: the kernel hands a process's signal to any thread not masking it). Off the
    main thread nothing can interrupt the block, and it runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, Any]] = []

    def hold(signum: int, frame: Any) -> None:
        pending.append((signum, frame))

    previous: dict[int, Any] = {}
    for signum in _HELD:
        handler = signal.getsignal(signum)
        if handler is None:  # installed from C: cannot be restored from Python, so leave it alone
            continue
        previous[signum] = handler
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum, frame in pending[:1]:  # the first signal decides; the rest would repeat it
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def _first_existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists() or parent == parent.parent:
            return parent
    return Path(".")


def check_parent(path: Path, what: str = "output") -> None:
    """One-line error when `path` cannot be created: an ancestor is a file, or the nearest existing
    ancestor directory is not writable. Missing directories are fine (they are created later)."""
    path = Path(path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NerfEvalError(f"{path}: cannot write the {what} there: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise NerfEvalError(f"{path}: cannot write the {what} there: {parent} is not writable")
            return


def check_output_file(path: Path, overwrite: bool, what: str = "output file") -> None:
    """Validate a file destination before any work: not a directory, not an existing file unless
    `overwrite`, and a parent that is (or can become) a writable directory."""
    path = Path(path)
    if path.is_dir():
        raise NerfEvalError(f"{path}: is a directory; the {what} needs a file name")
    if path.exists() and not overwrite:
        raise NerfEvalError(f"{path}: file exists; refusing to overwrite it (use --force)")
    check_parent(path, what)


def check_output_dir(path: Path, overwrite: bool, what: str = "output directory") -> None:
    """Validate a directory destination before any work: not a file, empty unless `overwrite`, and
    a parent that is (or can become) a writable directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NerfEvalError(f"{path}: exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise NerfEvalError(f"{path}: exists and is not an empty directory; refusing to overwrite (use --force)")
    check_parent(path, what)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def atomic_write_bytes(data: bytes, path: str | Path, mode: int = 0o644) -> Path:
    """Write `data` to `path` through a temporary sibling and one `os.replace`: readers see the old
    file or the whole new one, never a part; an interrupt leaves no temporary behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with deferred_signals():
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    return path


def atomic_write_text(text: str, path: str | Path) -> Path:
    """`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(text.encode("utf-8"), path)


@contextlib.contextmanager
def atomic_directory_swap(out: Path) -> Iterator[Path]:
    """A fresh hidden sibling directory to fill; when the block ends normally it replaces `out`.

    The swap renames the old `out` aside, renames the new one in, then deletes the old one, all with
    signals held back; if the second rename fails the old one is renamed back. A failed or interrupted
    block leaves `out` untouched and removes the temporary directory."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with deferred_signals():
            tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
            tmp.chmod(0o755)  # mkdtemp makes it private; the finished directory is an ordinary one
        yield tmp
        with deferred_signals():
            aside = None
            if out.exists() or out.is_symlink():
                aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
                aside.rmdir()  # only the unique name is wanted
                os.rename(out, aside)
            try:
                os.rename(tmp, out)
            except BaseException:
                if aside is not None:
                    os.rename(aside, out)
                raise
            if aside is not None:
                _remove(aside)
    finally:
        with deferred_signals():
            if tmp is not None and tmp.exists():
                _remove(tmp)


@contextlib.contextmanager
def atomic_files_into(out: Path) -> Iterator[Path]:
    """A fresh hidden sibling directory to fill; when the block ends normally, each file in it is
    renamed into `out` (created if needed), all with signals held back, so an interrupt leaves `out`
    with all of the new files or none of them. Files of `out` that the block did not write stay (a
    `--force` into a non-empty directory); a failed or interrupted block removes the temporary one."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with deferred_signals():
            tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        yield tmp
        with deferred_signals():
            out.mkdir(exist_ok=True)
            for f in sorted(tmp.iterdir()):
                os.replace(f, out / f.name)
    finally:
        with deferred_signals():
            if tmp is not None and tmp.exists():
                _remove(tmp)


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt (as Ctrl-C does), so `kill` gets the same
    clean-up and one-line exit as Ctrl-C; the previous handler is restored afterwards. Off the main
    thread (where Python cannot set handlers) signals are left alone."""
    try:
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def interruptible(what: str) -> Callable[[F], F]:
    """Decorate a CLI command: SIGTERM is handled like Ctrl-C while it runs, and either one ends it
    with a single stderr line and exit code 130 (no traceback). The commands write their outputs with
    the atomic helpers above, so an interrupted command leaves its destinations as they were."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> int:
            try:
                with sigterm_as_keyboard_interrupt():
                    return fn(*args, **kwargs)
            except KeyboardInterrupt:
                print(f"nerf-eval: {what} interrupted; its outputs are as they were before, or complete",
                      file=sys.stderr)
                return 130

        return run  # type: ignore[return-value]

    return wrap
