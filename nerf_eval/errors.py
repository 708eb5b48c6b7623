"""Errors the library raises for bad input; each message is one line naming the file or value."""

import re


class NerfEvalError(ValueError):
    """Base class: a user-facing, one-line error (the CLI prints it without a traceback)."""


class SceneError(NerfEvalError):
    """A scene on disk is missing, malformed or inconsistent."""


class CheckpointError(NerfEvalError):
    """A checkpoint cannot be read, has the wrong layout or holds bad weights."""


class CompressorError(NerfEvalError):
    """A compressor is unknown, misconfigured, or was given bad calibration data."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors
    that quote what a library said."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def describe(value: object, limit: int = 40) -> str:
    """A value read from a file, for a one-line message: its repr when that is one short line, else its
    type (a tensor's or a long list's repr spans lines or screens)."""
    text = repr(value)
    return text if len(text) <= limit and "\n" not in text else f"a {type(value).__name__}"


def out_of_memory(e: BaseException) -> str | None:
    """One line for an allocation that failed (a ray, sample or chunk count too large for this machine's
    memory: torch's allocator raises RuntimeError, Python MemoryError), or None for any other error, which
    keeps its traceback."""
    text = str(e)
    if not (isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()):
        return None
    size = re.search(r"allocate (\d+) bytes", text)
    tried = f" (an allocation of {int(size.group(1)) / 2**30:.1f} GiB)" if size else ""
    return f"out of memory{tried}: a ray, sample or chunk count given is too large for this machine"
