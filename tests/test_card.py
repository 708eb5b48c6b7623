"""`nerf-eval card`: a model card measured at a chosen scale, with per-view metrics, data and notes."""

import json
import shutil

import pytest

from nerf_eval.card import QUICK_PIXELS, quick_check, quick_scale
from nerf_eval.cli import main
from pytest_nerfcompress.testing import write_tiny_target


def test_quick_scale_keeps_small_scenes_at_half_and_caps_large_ones():
    assert quick_scale(100, 100) == 0.5
    s = quick_scale(504, 378)
    assert s < 0.5 and round(504 * s) * round(378 * s) <= QUICK_PIXELS * 1.01


def test_card_records_scale_splits_per_view_metrics_and_notes(tmp_path, capsys):
    paths = write_tiny_target(tmp_path, size=16)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(paths["checkpoint"], run / "checkpoint.pt")
    scene = f"{paths['scene']}:white_bkgd=true"
    rc = main(["card", str(run), "--scene", scene, "--command", "nerf-eval train ...", "--scale", "0.5",
               "--views", "0,1", "--notes", "Trained on a toy."])
    assert rc == 0
    card = json.loads((run / "model_card.json").read_text())
    assert card["scale"] == 0.5 and card["resolution"] == [8, 8] and card["scene"] == scene
    assert set(card["splits"]) >= {"train", "test"} and card["test"]["views"] == card["splits"]["test"][:2]
    md = (run / "model_card.md").read_text()
    assert f"--scene {scene} --scale 0.5`" in md
    rows = [ln for ln in md.splitlines() if ln.startswith(f"| {card['test']['views'][0]} |")]
    assert len(rows) == 1 and f"{card['test']['per_view'][0]['psnr']:.2f}" in rows[0]
    assert "## Notes and known limitations" in md and "Trained on a toy." in md
    again = quick_check(run / "checkpoint.pt", scene, scale=card["quick_check"]["scale"])
    assert again["psnr"] == pytest.approx(card["quick_check"]["psnr"], abs=1e-6)

    argv = ["card", str(run), "--scene", scene, "--command", "nerf-eval train ...", "--scale", "0.5", "--views", "0"]
    capsys.readouterr()
    assert main(argv) == 2  # the card exists: replaced only with --force
    assert capsys.readouterr().err.strip() == (f"nerf-eval: error: {run / 'model_card.json'}: file exists; refusing "
                                               "to overwrite it (use --force)")
    assert json.loads((run / "model_card.json").read_text()) == card
    assert main([*argv, "--force"]) == 0
    assert json.loads((run / "model_card.json").read_text())["test"]["views"] == card["test"]["views"][:1]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "model_card.json", "model_card.md"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_card_refuses_a_scale_out_of_range_before_measuring(tmp_path, capsys):
    assert main(["card", str(tmp_path), "--scene", "object", "--command", "x", "--scale", "0"]) == 2
    assert "--scale" in capsys.readouterr().err


def test_card_refuses_views_outside_the_test_split_in_one_line(tmp_path, capsys):
    paths = write_tiny_target(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(paths["checkpoint"], run / "checkpoint.pt")
    assert main(["card", str(run), "--scene", str(paths["scene"]), "--command", "x", "--views", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nerf-eval: error: views [-1] out of range: split 'test' of 'scene' has 10 views"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]


@pytest.mark.parametrize("white", ["true", "false"])
def test_card_figures_are_what_evaluate_measures_on_either_background(tmp_path, capsys, white):
    paths = write_tiny_target(tmp_path, size=16)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(paths["checkpoint"], run / "checkpoint.pt")
    scene = f"{paths['scene']}:white_bkgd={white}"
    assert main(["card", str(run), "--scene", scene, "--command", "c", "--scale", "0.5", "--views", "0,1"]) == 0
    card = json.loads((run / "model_card.json").read_text())
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--scene", scene, "--scale", "0.5",
                 "--views", "0,1", "--no-flip", "--json", str(tmp_path / "eval.json")]) == 0
    measured = json.loads((tmp_path / "eval.json").read_text())
    assert card["test"]["mean"]["psnr"] == pytest.approx(measured["mean"]["psnr"], abs=1e-6)
