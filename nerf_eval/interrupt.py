"""Ctrl-C and SIGTERM as a request to stop at the next safe point, not at an arbitrary bytecode.

A Python signal handler that raises does so between any two bytecodes of the main thread: in the middle
of an `import` (the half-initialised module then fails on its next use: numpy's lazily imported
`linalg` ended in a RecursionError traceback) or inside a Python function that torch's C++ code
calls back (pybind11 cannot carry the exception through and the process aborts). So while a command
runs (`stop_requests`), the first SIGINT or SIGTERM only records the request, and the work loops
(each rendered batch, so every render, training and fine-tune step, calibration and timing round; each
image a scene loader reads; each pruned network; each batch of an occupancy bake) call `stop_point()`,
which raises KeyboardInterrupt there. Two escapes keep Ctrl-C prompt where no loop looks: a second
signal raises at once, and a request nobody has taken up after `grace_s` seconds (10 by default, longer
than any stretch between stop points we know of) raises by itself (SIGALRM), with the old risk.

`deferred_signals` holds both signals (and the grace timer) back during a critical section (a rename, a
cleanup) and ends with a stop point, and `interruptible` gives a command the one-line exit 130.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from typing import Any, Callable, Iterator, TypeVar

_HELD = (signal.SIGINT, signal.SIGTERM)
F = TypeVar("F", bound=Callable[..., int])

_requested: list[int] = []  # the signals asking to stop that no stop point has taken up yet
_grace_s: list[float] = []  # the grace of the innermost active `stop_requests` (a stack, for nesting)
_sections: list[None] = []  # one entry per `deferred_signals` section running now


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def stop_point() -> None:
    """Raise KeyboardInterrupt if SIGINT or SIGTERM asked to stop; otherwise return at once (a list
    test: cheap enough for every rendered batch)."""
    if _requested:
        _requested.clear()
        if _on_main_thread():
            signal.setitimer(signal.ITIMER_REAL, 0)
        raise KeyboardInterrupt


def _request(signum: int, frame: Any) -> None:
    if _requested:  # asked twice: the user insists
        _requested.clear()
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise KeyboardInterrupt
    _requested.append(signum)
    if _grace_s and _grace_s[-1] > 0:
        signal.setitimer(signal.ITIMER_REAL, _grace_s[-1])


def _overdue(signum: int, frame: Any) -> None:
    if not _sections:  # inside a critical section the request waits for its end, which is a stop point
        stop_point()


@contextlib.contextmanager
def stop_requests(grace_s: float = 10.0) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM request a stop that the next `stop_point()` carries out
    (so `kill` ends a command as cleanly as Ctrl-C); previous handlers are restored afterwards. Off the
    main thread (where Python cannot set handlers) signals are left alone."""
    if not _on_main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (*_HELD, signal.SIGALRM)}
    for s in _HELD:
        signal.signal(s, _request)
    signal.signal(signal.SIGALRM, _overdue)
    _grace_s.append(grace_s)
    try:
        yield
    finally:
        _grace_s.pop()
        # a request still pending belongs to the enclosing scope: its grace runs from here
        signal.setitimer(signal.ITIMER_REAL, _grace_s[-1] if _requested and _grace_s else 0)
        for s, handler in previous.items():
            if handler is not None:  # None: installed from C, cannot be restored from Python
                signal.signal(s, handler)
        if not _grace_s:
            _requested.clear()  # a request that came too late for any stop point ends with its scope


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the duration of the block; they take effect when it ends.

    For short critical sections only (a rename, a cleanup): a Ctrl-C then arrives a moment later
    instead of in the middle. Python runs signal handlers in the main thread only, so the handlers are
    swapped for one that notes the signal, and the previous handler is called for it afterwards (a
    thread mask would not do: the kernel hands a process's signal to any thread not masking it); the
    end of the section is a stop point. Off the main thread nothing can interrupt the block."""
    if not _on_main_thread():
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
    _sections.append(None)
    try:
        yield
    finally:
        _sections.pop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum, frame in pending[:1]:  # the first signal decides; the rest would repeat it
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
        stop_point()


def interruptible(what: str) -> Callable[[F], F]:
    """Decorate a CLI command: SIGINT and SIGTERM stop it at its next stop point, with a single stderr
    line and exit code 130 (no traceback). The commands write their outputs with `nerf_eval.atomic`, so
    an interrupted command leaves its destinations as they were."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> int:
            try:
                with stop_requests():
                    return fn(*args, **kwargs)
            except KeyboardInterrupt:
                pass
            # Printed once the exception, and with it the frames of the interrupted loops, is gone: their
            # progress bars close (and print) as those frames are freed, so the line comes last.
            print(f"nerf-eval: {what} interrupted; its outputs are as they were before, or complete",
                  file=sys.stderr)
            return 130

        return run  # type: ignore[return-value]

    return wrap
