"""Whether a checkpoint belongs to the scene it is measured on.

A checkpoint trained by `nerf-eval train` records its scene (`meta["scene"]`, the loaded scene's
`source`, e.g. `builtin:object:seed=0` or `blender:lego_200`); a shipped one also has a model card next
to it holding its sha256. Measuring a checkpoint on another scene, or a file its card does not
describe, gives figures that mean nothing, so both are one-line errors. Checkpoints that record no
scene (nerf-pytorch's `.tar`) are taken as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from nerf_eval.checkpoint import file_hash
from nerf_eval.errors import CheckpointError

CARD = "model_card.json"


def check_scene(path: Path, recorded: object, spec: str, source: str) -> None:
    """Refuse a checkpoint that records having been trained on a scene other than `source`."""
    if recorded is None or not source or recorded == source:
        return
    raise CheckpointError(f"{path}: trained on scene {recorded!r}, but the scene under test {spec!r} is "
                          f"{source!r}; pass --nerf-cross-scene if measuring it there is intended")


def check_card(path: Path) -> None:
    """Refuse a checkpoint whose model card (same directory, naming this file) holds another sha256."""
    card_path = path.parent / CARD
    if not card_path.is_file():
        return
    try:
        card = json.loads(card_path.read_text(encoding="utf8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{card_path}: unreadable model card ({type(e).__name__}: {e})") from None
    if not isinstance(card, dict) or card.get("checkpoint") != path.name or not card.get("sha256"):
        return
    actual = file_hash(path)
    if actual != card["sha256"]:
        raise CheckpointError(f"{path}: sha256 {actual[:12]} is not the {str(card['sha256'])[:12]} its model card "
                              f"{card_path.name} describes (a changed file, or a stale card)")
