"""Writing outputs so that an interrupt never leaves half a file, loses the old one, or leaves temporaries.

Three rules, used by checkpoints, compressed models, reports and evaluate's JSON:

* output locations are checked before any work (`check_output_file`, `check_output_dir`), so a
  long render never ends in "parent is not a directory";
* new content goes to a hidden temporary sibling first and is swapped in at the end: a file with one
  `os.replace` (atomic), a directory by renaming the old one aside, renaming the new one in, then
  deleting the old one, so at every instant the destination (or its aside copy, restored on failure)
  holds a complete version;
* the short critical sections (create a temporary and enter its cleanup, the swap, the cleanup) run
  with SIGINT and SIGTERM held back (`nerf_eval.interrupt.deferred_signals`): a signal arriving then
  takes effect right after, so nothing is left half-swapped and no temporary escapes its cleanup.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from nerf_eval.errors import NerfEvalError
from nerf_eval.interrupt import deferred_signals


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
def _temporary_sibling(out: Path) -> Iterator[Path]:
    """A fresh hidden directory beside `out` (mode 755, like an ordinary one), removed when the block ends
    however it ends; what the block moved out of it stays where it went. Creation and removal hold back
    signals, so an interrupt leaves no stray temporary."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with deferred_signals():
            tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
            tmp.chmod(0o755)  # mkdtemp makes it private; a finished directory is an ordinary one
        yield tmp
    finally:
        with deferred_signals():
            if tmp is not None and tmp.exists():
                _remove(tmp)


@contextlib.contextmanager
def atomic_directory_swap(out: Path) -> Iterator[Path]:
    """A fresh hidden sibling directory to fill; when the block ends normally it replaces `out`.

    The swap renames the old `out` aside, renames the new one in, then deletes the old one, all with
    signals held back; if the second rename fails the old one is renamed back. A failed or interrupted
    block leaves `out` untouched and removes the temporary directory."""
    out = Path(out)
    with _temporary_sibling(out) as tmp:
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


@contextlib.contextmanager
def atomic_files_into(out: Path) -> Iterator[Path]:
    """A fresh hidden sibling directory to fill; when the block ends normally, each file in it is
    renamed into `out` (created if needed), all with signals held back, so an interrupt leaves `out`
    with all of the new files or none of them. Files of `out` that the block did not write stay (a
    `--force` into a non-empty directory); a failed or interrupted block removes the temporary one."""
    out = Path(out)
    with _temporary_sibling(out) as tmp:
        yield tmp
        with deferred_signals():
            out.mkdir(exist_ok=True)
            for f in sorted(tmp.iterdir()):
                os.replace(f, out / f.name)
