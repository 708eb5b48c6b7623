"""nerf_eval: a vanilla NeRF core for measuring compression (quality, size, speed).

The package imports nothing heavy itself: `nerf-eval` installs its Ctrl-C/SIGTERM handling before
torch is imported, and `nerf-eval --help` answers at once. `ModelPair`, `NeRF` and `NeRFConfig` are
loaded from `nerf_eval.model` on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModelPair", "NeRF", "NeRFConfig"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nerf_eval import model

        return getattr(model, name)
    raise AttributeError(f"module 'nerf_eval' has no attribute {name!r}")
