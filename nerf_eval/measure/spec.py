"""What a measurement was made on and how: one spec with one fingerprint, so `nerf-eval report`,
autocompress and the pytest plugin agree on when two sets of figures were measured the same way.

A spec names the scene (its spec string, as records store it: see `portable`), the checkpoint's
sha256, the evaluated views (scene indices), the scale and the resolution it gives, the render sample
counts, the calibration batch (rays and seed) and the latency batch (rays and seed), and the device
that rendered. Its fingerprint is the sha256 of all of that: the evaluation cache keys on it, and two
records or reports with the same fingerprint were measured alike.

Documents written before the fingerprint existed (saved pytest-benchmark runs, earlier reports) hold
part of a spec; `MeasurementSpec.mismatch` compares the fields such a document holds and says which one
differs, the one rule behind the plugin's saved-run comparison and `nerf-eval report --extend`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from nerf_eval.errors import describe

SPEC_VERSION = "nerf-measurement-spec-v1"
DEFAULT_DEVICE = "cpu"
CALIBRATION_SEED = 0  # the calibration batch's rays (nerf_eval.measure.batches)
LATENCY_SEED = 1  # the latency batch's rays


def portable(spec: str | Path, root: Path | None) -> str:
    """A scene spec or file as records store it: relative to `root` when it is a path inside it, its
    name when it is a path elsewhere, unchanged when it is a built-in scene name (so no machine path
    is stored, and the same files measured from two places read alike)."""
    text = str(spec)
    if not ("/" in text or "\\" in text or Path(text).suffix):
        return text
    path = Path(text)
    if root is not None and path.is_absolute():
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix() if not path.is_absolute() else path.name


def parse_views(spec: str, n_test: int) -> list[int]:
    """Positions in the test split: 'all', a count N (spread evenly) or a list 'i,j,...'.

    A single position is written with a trailing comma ('5,') to tell it from a count."""
    spec = spec.strip()
    if spec == "all":
        return list(range(n_test))
    try:
        if "," in spec:
            return [int(s) for s in spec.split(",") if s.strip()]
        count = int(spec)
    except ValueError:
        raise ValueError(f"--nerf-views={spec!r}: expected a count, positions like '0,8' or 'all'") from None
    if count < 1:
        raise ValueError(f"--nerf-views={spec!r}: need at least one view")
    count = min(count, n_test)
    return sorted({round(i * (n_test - 1) / max(count - 1, 1)) for i in range(count)}) if count > 1 else [n_test // 2]


@dataclass(frozen=True)
class MeasurementSpec:
    """Everything that decides a model's measured figures apart from the model itself."""

    scene: str
    checkpoint_sha256: str
    views: tuple[int, ...]
    scale: float
    width: int
    height: int
    n_coarse: int
    n_fine: int
    calibration_rays: int
    latency_rays: int
    calibration_seed: int = CALIBRATION_SEED
    latency_seed: int = LATENCY_SEED
    device: str = DEFAULT_DEVICE

    def settings(self) -> dict:
        """Everything but the scene and checkpoint, as records and reports store it (`settings`). A CPU
        spec names no device, the form saved runs had before devices were recorded."""
        out = {"views": list(self.views), "height": self.height, "width": self.width,
               "samples": [self.n_coarse, self.n_fine], "scale": self.scale,
               "calibration_rays": self.calibration_rays, "calibration_seed": self.calibration_seed,
               "latency_rays": self.latency_rays, "latency_seed": self.latency_seed}
        if self.device != DEFAULT_DEVICE:
            out["device"] = self.device
        return out

    @property
    def fingerprint(self) -> str:
        """sha256 of the whole spec (the evaluation cache's key and the test of 'measured alike')."""
        text = json.dumps({"version": SPEC_VERSION, "scene": self.scene, "checkpoint_sha256": self.checkpoint_sha256,
                           "settings": {**self.settings(), "device": self.device}}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict:
        """The spec as records and reports store it: scene, checkpoint_sha256, settings, spec_sha256."""
        return {"scene": self.scene, "checkpoint_sha256": self.checkpoint_sha256, "settings": self.settings(),
                "spec_sha256": self.fingerprint}

    @classmethod
    def from_dict(cls, d: Mapping) -> "MeasurementSpec":
        """The spec a record or report of this version stores (`to_dict`, or a record's `identity`)."""
        s = d["settings"]
        return cls(scene=d["scene"], checkpoint_sha256=d["checkpoint_sha256"], views=tuple(s["views"]),
                   scale=s["scale"], width=s["width"], height=s["height"], n_coarse=s["samples"][0],
                   n_fine=s["samples"][1], calibration_rays=s["calibration_rays"], latency_rays=s["latency_rays"],
                   calibration_seed=s["calibration_seed"], latency_seed=s["latency_seed"],
                   device=s.get("device", DEFAULT_DEVICE))

    def mismatch(self, other: Mapping) -> str | None:
        """Why the figures of `other` (a record or report holding `scene`, `checkpoint_sha256`,
        `settings` and, since specs have one, `spec_sha256`) were measured otherwise; None when they
        were measured alike.

        A document written by an earlier version holds part of the spec: a field it does not hold is not
        compared (such a saved run was compared on what it holds then, too), a missing device is the
        CPU, a checkpoint may be given by its first 16 hex digits and the views by their count (older
        reports). Whatever it holds must match."""
        theirs_sha = str(other.get("checkpoint_sha256") or "")
        same_checkpoint = (theirs_sha == self.checkpoint_sha256
                           or (len(theirs_sha) >= 12 and len(theirs_sha) < 64 and self.checkpoint_sha256.startswith(theirs_sha)))
        if not same_checkpoint or other.get("scene") != self.scene:
            return (f"it was measured on scene {other.get('scene')!r} with checkpoint "
                    f"{theirs_sha[:12]}, this run uses scene {self.scene!r} with "
                    f"checkpoint {self.checkpoint_sha256[:12]}")
        settings = other.get("settings") or {}
        if not isinstance(settings, Mapping):
            return f"its settings are {describe(settings)}, not a JSON object"
        theirs = dict(settings)
        theirs.setdefault("device", DEFAULT_DEVICE)
        mine = {**self.settings(), "device": self.device}
        if isinstance(theirs.get("views"), int) and not isinstance(theirs.get("views"), bool):
            theirs["views"], mine["views"] = theirs["views"], len(self.views)
        differs = sorted(k for k in theirs if mine.get(k) != theirs[k])
        if differs:
            return (f"it used settings {', '.join(f'{_shown(k)}={_shown(theirs[k])}' for k in differs)}, this run "
                    f"uses {', '.join(f'{_shown(k)}={mine.get(k)}' for k in differs)}")
        fingerprint = other.get("spec_sha256")
        if fingerprint and fingerprint != self.fingerprint:
            return f"it was measured under spec {_shown(fingerprint)[:12]}, this run under {self.fingerprint[:12]}"
        return None


def _shown(value: object) -> str:
    """A value from another document, for a one-line reason: as it reads when that is one short line."""
    text = str(value)
    return text if "\n" not in text and "\r" not in text and len(text) <= 80 else describe(value)
