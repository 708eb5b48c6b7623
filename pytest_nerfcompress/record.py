"""One model's measured figures on one target, as a plain record that travels as JSON.

Records go into pytest-benchmark's `extra_info` (so saved runs hold them), into each test report's
`user_properties` (so pytest-xdist brings them to the controller) and into the report directory.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

EXTRA_INFO_KEY = "nerfcompress"  # also the saved run's section of records (nerf_eval.history.SAVED_KEY)
PROPERTY_KEY = "nerfcompress"


@dataclass
class Record:
    """Quality (means over the evaluated views), serialized size and latency of one model.

    `scene`, `checkpoint_sha256` and `settings` say what was measured, so that a saved run made on
    another scene, checkpoint or view set is recognised as not comparable. Timing is paired (see
    `nerf_eval.measure`): `latency_s` is the model's median over rounds interleaved with fp32,
    `reference_latency_s` fp32's median in the same rounds, `speedup` the median of the per-round
    ratios and `speedup_spread` their interquartile range."""

    name: str
    target: str
    scene: str = ""
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    settings: dict = field(default_factory=dict)
    psnr: float | None = None
    ssim: float | None = None
    flip: float | None = None
    worst_psnr: float | None = None
    worst_view: int | None = None
    depth_error: float | None = None
    sharpness: float | None = None
    size_bytes: int | None = None
    latency_s: float | None = None
    speedup: float | None = None
    speedup_spread: float | None = None
    reference_latency_s: float | None = None

    def to_dict(self) -> dict:
        """JSON-safe: non-finite floats become None."""
        d = dataclasses.asdict(self)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def mismatch(self, saved: dict) -> str | None:
        """Why a saved record was measured on something else (None when comparable)."""
        if saved.get("checkpoint_sha256") != self.checkpoint_sha256 or saved.get("scene") != self.scene:
            return (f"it was measured on scene {saved.get('scene')!r} with checkpoint "
                    f"{str(saved.get('checkpoint_sha256'))[:12]}, this run uses scene {self.scene!r} with "
                    f"checkpoint {self.checkpoint_sha256[:12]}")
        if saved.get("settings") != self.settings:
            return f"it used settings {saved.get('settings')}, this run uses {self.settings}"
        return None


def publish(node: Any, entry: dict) -> None:
    """Attach a summary entry (kind: record, gate or error) to a test item's report."""
    node.user_properties.append((PROPERTY_KEY, entry))
