"""Hook specifications the plugin adds (through `pytest_addhooks`)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_nerfcompress_register(registry: Any, config: pytest.Config) -> None:
    """Add compressors to `registry` (a nerf_eval.compress.Registry copy for this session).

    Implement it in a conftest.py (it then applies to the tests below it) or in a plugin:

        def pytest_nerfcompress_register(registry):
            registry.add(FunctionCompressor("halve", halve, gates={"psnr_drop": 1.0}))
    """
