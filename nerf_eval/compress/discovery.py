"""Compressors from installed packages: the `nerfcompress.compressors` entry-point group.

An installed package exposes a Compressor object, a Compressor class, or a function that takes the
registry (and registers factories with declared parameters) under the group in its metadata:

    [project.entry-points."nerfcompress.compressors"]
    my-compressor = my_package.compressors:register

The global registry (`nerf_eval.compress.REGISTRY`) loads the group once, on first use, so
`nerf-eval report`, `compress`, `autocompress` and the pytest plugin all see the same compressors. A
package that fails to load is a one-line CompressorError naming its entry point.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from nerf_eval.compress.base import Compressor, Registry
from nerf_eval.errors import CompressorError

ENTRY_POINT_GROUP = "nerfcompress.compressors"


def install(registry: Registry, obj: Any, origin: str) -> None:
    """Add an entry point's object: a Compressor, a Compressor class, or a function(registry)."""
    if isinstance(obj, type) and isinstance(obj, Compressor):
        obj = obj()
    if isinstance(obj, Compressor):
        registry.add(obj)
    elif callable(obj):
        obj(registry)
    else:
        raise CompressorError(f"{origin}: {type(obj).__name__} is neither a Compressor nor a function "
                              "taking the registry")


def load_entry_points(registry: Registry) -> None:
    """Install every object of the `nerfcompress.compressors` entry-point group into `registry`."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name!r} ({ep.value}) in group {ENTRY_POINT_GROUP}"
        try:
            install(registry, ep.load(), origin)
        except CompressorError as e:
            raise CompressorError(f"{origin}: {e}") from None
        except Exception as e:  # a broken third-party package: name it, keep the message to one line
            first = (str(e).strip().splitlines() or [""])[0]
            raise CompressorError(f"{origin} failed to load: {type(e).__name__}: {first}") from None
