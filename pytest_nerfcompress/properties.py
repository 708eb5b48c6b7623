"""Where the plugin puts what it measured: each test report's `user_properties` (so pytest-xdist brings
records to the controller and the summary reads them) and pytest-benchmark's `extra_info` (so saved runs
hold them; `nerf_eval.history` reads them back)."""

from __future__ import annotations

from typing import Any

from nerf_eval.history import SAVED_KEY

EXTRA_INFO_KEY = SAVED_KEY  # a benchmark's extra_info key, and the saved run's section of other records
PROPERTY_KEY = "nerfcompress"


def publish(node: Any, entry: dict) -> None:
    """Attach a summary entry (kind: record, gate or error) to a test item's report."""
    node.user_properties.append((PROPERTY_KEY, entry))
