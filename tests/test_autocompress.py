"""autocompress on a tiny model and scene: names rebuild candidates, the front, the budget, the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from nerf_eval.autocompress import (Candidate, SearchOptions, _precision_variants, accelerator_variants, candidate_name,
                                    pareto_front, rank, search)
from nerf_eval.checkpoint import save_checkpoint
from nerf_eval.cli import main
from nerf_eval.compress import get_compressor
from nerf_eval.compress.saved import load_any
from nerf_eval.errors import NerfEvalError
from nerf_eval.measure.record import Record
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import RenderSettings
from nerf_eval.scenes.blender import write_blender
from nerf_eval.scenes.procedural import make_scene

TINY = NeRFConfig(depth=4, width=32, skips=(2,), multires=4, multires_views=2, view_width=16)
SMALL = RenderSettings(n_coarse=8, n_fine=8, chunk=512)
FAST = dict(ratios=(0.0, 0.5), mixed_budgets=(), calibration_views=1, confirm_views=1, latency_rays=64,
            repeats=1, max_drop=100.0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto")
    scene, _ = make_scene("object", size=8)
    write_blender(scene, root / "scene")
    pair = ModelPair.create(TINY, seed=2).eval()
    return root, scene, pair, save_checkpoint(root / "tiny.pt", pair)


@pytest.mark.parametrize("ratios,precision,heads", [
    ({"coarse": 0.0, "fine": 0.0}, {"coarse": "int8", "fine": "bf16"}, "fp32"),
    ({"coarse": 0.5, "fine": 0.0}, {"coarse": "fp32", "fine": "int8"}, "fp32"),
    ({"coarse": 0.5, "fine": 0.5}, {"coarse": "int8", "fine": "int8"}, "fp32"),
    ({"coarse": 0.0, "fine": 0.5}, {"coarse": "bf16", "fine": "fp32"}, "fp32"),
    ({"coarse": 0.5, "fine": 0.0}, {"coarse": "int8", "fine": "bf16"}, "int8")])
def test_candidate_name_rebuilds_the_assembled_pair(setup, ratios, precision, heads):
    _, scene, pair, _ = setup
    cal = scene.sample_rays(256, "train", 0)
    name = candidate_name("prune-activation-obs", ratios, precision, heads)
    by_name = get_compressor(name).compress(pair, cal)
    pruned = pair
    if any(ratios.values()):
        pruned = get_compressor(candidate_name("prune-activation-obs", ratios, {})).compress(pair, cal)
    assembled = dict((tuple(p.items()), b) for p, b in _precision_variants(pruned, cal, ("fp32", "bf16", "int8"),
                                                                           heads))
    built = assembled[tuple(precision.items())]()
    x = torch.randn(100, pair.coarse.input_ch + pair.coarse.input_ch_views, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for net in ("coarse", "fine"):
            assert torch.equal(by_name.networks()[net](x), built.networks()[net](x)), (name, net)


def test_names():
    assert candidate_name("r", {"coarse": 0.0, "fine": 0.0}, {"coarse": "fp32", "fine": "fp32"}) == "fp32"
    assert candidate_name("r", {"coarse": 0.3, "fine": 0.3}, {"coarse": "int8", "fine": "int8"}) == "r:0.3+int8-ptq-both"
    assert candidate_name("r", {"coarse": 0.5, "fine": 0.15}, {"coarse": "bf16", "fine": "int8"}) == \
        "r:0.15:coarse=0.5+int8-ptq-fine+bf16:coarse"
    assert candidate_name("r", {"coarse": 0.0, "fine": 0.0}, "mixed:40") == "mixed:40"
    assert candidate_name("r", {"coarse": 0.3, "fine": 0.3}, {"coarse": "int8", "fine": "bf16"}, "fp32") == \
        "r:0.3+int8-ptq-coarse:heads=fp32+bf16:fine"
    with pytest.raises(NerfEvalError, match="unknown int8 heads 'int4'"):
        SearchOptions(int8_heads="int4")


def _cand(name, psnr, lat, size, feasible=True):
    return Candidate(name, "t", {}, {}, Record(name, psnr=psnr, latency_s=lat, speedup=1 / lat, size_bytes=size),
                     feasible=feasible)


def test_pareto_front_and_rank():
    a, b, c, d = _cand("a", 30, 1.0, 100), _cand("b", 29, 0.5, 100), _cand("c", 28, 0.6, 120), _cand("d", 27, 0.4, 50)
    front = pareto_front([a, b, c, d])
    assert {x.name for x in front} == {"a", "b", "d"}  # c is worse than b on every axis
    d.feasible = False
    assert [x.name for x in rank([a, b, c, d], "speed")] == ["b", "c", "a"]
    assert [x.name for x in rank([a, b, c, d], "size")][0] in ("a", "b")


def test_search_picks_the_fastest_feasible_and_confirms_it(setup):
    _, scene, pair, _ = setup
    cal = scene.sample_rays(256, "train", 0)
    accelerators = ("samples", "samples:32:coarse=32", "occupancy", "coarse-grid")
    result = search(pair, scene, cal, SearchOptions(**FAST, accelerators=accelerators), SMALL, progress=False)
    names = {c.name for c in result.candidates}
    assert "prune-activation-obs:0.5+int8-ptq-both" in names and "bf16" in names
    # the two fastest, each with samples, occupancy, coarse-grid, then all three at each sample budget (in that
    # order: the occupancy grid serves the capped samples)
    accelerated = [c.name for c in result.candidates if c.stage == "accelerate"]
    assert len(accelerated) == 10
    suffixes = ("samples", "occupancy", "coarse-grid", "samples+occupancy+coarse-grid",
                "samples:32:coarse=32+occupancy+coarse-grid") * 2
    assert all(n == s or n.endswith("+" + s) for n, s in zip(accelerated, suffixes)), accelerated
    assert result.chosen is not None and result.chosen.confirmed_drop is not None
    assert result.chosen is rank([result.reference] + result.candidates, "speed")[0]
    for c in result.candidates:
        assert c.error is None and math.isfinite(c.psnr) and c.size_bytes > 0


def test_accelerator_variants_compose_one_of_each_base_at_every_budget():
    assert accelerator_variants(["samples", "samples:32:coarse=32", "occupancy", "coarse-grid"]) == [
        "samples", "occupancy", "coarse-grid", "samples+occupancy+coarse-grid",
        "samples:32:coarse=32+occupancy+coarse-grid"]
    assert accelerator_variants(["occupancy"]) == ["occupancy"]
    assert accelerator_variants(["samples", "samples:32"]) == ["samples", "samples:32"]
    assert accelerator_variants([]) == []


def test_tight_budget_stops_early(setup):
    _, scene, pair, _ = setup
    cal = scene.sample_rays(128, "train", 0)
    result = search(pair, scene, cal, SearchOptions(**{**FAST, "budget_s": 1e-3}), SMALL, progress=False)
    assert result.stopped_early and result.candidates == []


def test_the_accelerate_stage_keeps_its_share_of_the_budget(setup, monkeypatch):
    """80% of the budget spent before the search starts: every earlier stage is out of its 70%, and the
    accelerators still run (on fp32, the only base), within the full budget."""
    _, scene, pair, _ = setup
    cal = scene.sample_rays(128, "train", 0)
    monkeypatch.setattr("nerf_eval.autocompress._Search.elapsed", lambda self: 0.8 * self.options.budget_s)
    options = SearchOptions(**{**FAST, "budget_s": 1e6, "accelerators": ("samples", "occupancy")})
    result = search(pair, scene, cal, options, SMALL, progress=False)
    assert result.stopped_early
    assert [c.name for c in result.candidates] == ["samples", "occupancy", "samples+occupancy"]
    with pytest.raises(NerfEvalError, match="share of the budget"):
        SearchOptions(accelerate_share=1.0)


def test_bad_options():
    with pytest.raises(NerfEvalError, match="max-drop"):
        SearchOptions(max_drop=-1)
    with pytest.raises(NerfEvalError, match="objective"):
        SearchOptions(objective="beauty")
    with pytest.raises(NerfEvalError, match=r"\[0, 1\)"):
        SearchOptions(ratios=(0.0, 1.0))
    with pytest.raises(NerfEvalError, match="not a pruning compressor"):
        SearchOptions(prune_rule="int8-ptq-both")
    with pytest.raises(NerfEvalError, match="warp-drive"):
        SearchOptions(accelerators=("warp-drive",))


def test_cli_writes_model_front_and_tables(setup, capsys):
    root, _, _, ckpt = setup
    out = root / "auto"
    args = ["autocompress", "--checkpoint", str(ckpt), "--scene", str(root / "scene"), "--max-drop", "100",
            "--out", str(out), "--ratios", "0,0.5", "--calibration-views", "1", "--confirm-views", "1",
            "--calibration-rays", "128", "--latency-rays", "64", "--scale", "1"]
    assert main(args + ["--objective", "size"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(p.name for p in out.iterdir()) == ["front.png", "model.pt", "search.json", "search.md"]
    saved = load_any(out / "model.pt")
    assert saved.meta["compressor"] == info["compressor"]
    record = json.loads((out / "search.json").read_text())
    assert record["chosen"]["name"] == info["compressor"]
    ok = [c for c in record["candidates"] + [record["reference"]] if c["feasible"]]
    assert record["chosen"]["size_bytes"] == min(c["size_bytes"] for c in ok)
    assert main(args) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(args[:6] + ["-1"] + args[7:] + ["--force"]) == 2
    assert "max-drop" in capsys.readouterr().err
