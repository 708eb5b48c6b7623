"""The shipped checkpoints: they load, their hash matches the model card, and the card's quick
check (two test views at half resolution, full 64+128 samples) reproduces within 0.1 dB."""

import json
from pathlib import Path

import pytest

from nerf_eval.card import quick_check
from nerf_eval.checkpoint import file_hash, load_checkpoint
from nerf_eval.model import NeRFConfig, count_parameters

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.parent for p in (ROOT / "checkpoints").glob("*/model_card.json"))


def test_at_least_one_checkpoint_ships_with_a_card():
    assert SHIPPED, "no checkpoints/*/model_card.json found"


@pytest.mark.parametrize("run_dir", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_checkpoint_matches_its_card(run_dir):
    card = json.loads((run_dir / "model_card.json").read_text())
    ckpt = run_dir / card["checkpoint"]
    assert file_hash(ckpt) == card["sha256"], f"{ckpt} changed since its model card was written"
    pair = load_checkpoint(ckpt)
    assert pair.coarse.config == NeRFConfig() and pair.fine.config == NeRFConfig()
    assert count_parameters(pair.coarse) == count_parameters(pair.fine) == 595_844
    scene = card["scene"]
    if "/" in scene:  # a scene on disk (the real captures in ../shared), relative to the repository root
        if not (ROOT / scene).exists():
            pytest.skip(f"{run_dir.name}: scene data {scene} not found beside the repository")
        scene = str(ROOT / scene)
    again = quick_check(ckpt, scene, scale=card["quick_check"]["scale"])
    assert abs(again["psnr"] - card["quick_check"]["psnr"]) <= 0.1
