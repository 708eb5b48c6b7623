"""Turning the library's bad-input errors into one-line test failures (or skips), for fixtures and checks.

Its own module so that the fixtures and the checks both use it without importing each other.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import pytest

from pytest_nerfcompress.properties import publish


@contextlib.contextmanager
def one_line_errors(target: str = "", node: Any = None, name: str = "") -> Iterator[None]:
    """Bad input (NerfEvalError) fails the test with its one-line message (no chained traceback);
    a missing checkpoint of an `optional` target skips it. `target` names the target for the summary's error row,
    which is attached to `node` (a test item) right away when given."""
    from nerf_eval.errors import NerfEvalError
    from nerf_eval.measure.workbench import CheckpointMissing

    try:
        yield
    except CheckpointMissing as e:
        raise pytest.skip.Exception(str(e)) from None
    except NerfEvalError as e:
        if node is not None:
            publish(node, {"kind": "error", "target": target, "name": name, "message": str(e)})
        failure = pytest.fail.Exception(str(e), pytrace=False)
        failure.nerf_target = target
        raise failure from None
