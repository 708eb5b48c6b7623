"""compress / render / report subcommands on a tiny model and a tiny built-in scene."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import pytest
import torch

from nerf_eval.checkpoint import save_checkpoint
from nerf_eval.cli import main
from nerf_eval.compress.saved import load_any
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.report import series_of
from nerf_eval.scenes.blender import write_blender
from nerf_eval.scenes.procedural import make_scene

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tools")
    scene, _ = make_scene("object", size=8)
    write_blender(scene, root / "scene")
    ckpt = save_checkpoint(root / "tiny.pt", ModelPair.create(TINY, seed=1))
    return root, ckpt, root / "scene"


def test_compress_writes_a_model_evaluate_can_load(tiny, capsys):
    root, ckpt, scene = tiny
    out = root / "bf16.pt"
    assert main(["compress", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressor", "bf16",
                 "--out", str(out), "--calibration-rays", "64"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["size_bytes"] < 0.6 * info["fp32_size_bytes"]
    pair = load_any(out)
    assert next(pair.coarse.parameters()).dtype == torch.bfloat16
    assert main(["evaluate", "--checkpoint", str(out), "--scene", str(scene), "--views", "0",
                 "--n-coarse", "8", "--n-fine", "8", "--no-flip"]) == 0
    assert main(["compress", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressor", "bf16",
                 "--out", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_compress_unknown_compressor_is_one_line(tiny, capsys):
    root, ckpt, scene = tiny
    assert main(["compress", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressor", "int3-magic",
                 "--out", str(root / "x.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "int3-magic: unknown compressor" in err and len(err.splitlines()) == 1


def test_render_gif(tiny):
    root, ckpt, scene = tiny
    out = root / "path.gif"
    assert main(["render", "--checkpoint", str(ckpt), "--scene", str(scene), "--out", str(out), "--frames", "3"]) == 0
    frames = iio.imread(out, index=None)
    assert frames.shape[0] == 3 and frames.shape[1:3] == (8, 8)


def test_report_writes_tables_and_plots(tiny):
    root, ckpt, scene = tiny
    out = root / "report"
    assert main(["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressors", "fp16,bf16",
                 "--out", str(out), "--calibration-rays", "32", "--latency-rays", "16", "--repeats", "1"]) == 0
    for name in ("results.md", "results.json", "grid.png", "tradeoff.png"):
        assert (out / name).stat().st_size > 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert [r["name"] for r in rows] == ["fp32", "fp16", "bf16"]
    assert rows[2]["size_bytes"] < rows[0]["size_bytes"]
    assert 0 < rows[2]["size_fine_bytes"] < rows[2]["size_bytes"]
    assert rows[0]["depth_change"] == 0 and 0 <= rows[2]["depth_change"] < 1
    assert all(0 <= v["depth_change"] < 1 for v in rows[2]["per_view"])
    assert "| bf16 |" in (out / "results.md").read_text()
    assert main(["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressors", "bf16",
                 "--out", str(out)]) == 2


def test_report_of_a_pruning_sweep_with_finetune(tiny):
    root, ckpt, scene = tiny
    out = root / "sweep"
    assert main(["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressors",
                 "prune-activation:0.25:round=1,prune-activation:0.5:round=1", "--out", str(out),
                 "--calibration-rays", "32", "--latency-rays", "16", "--repeats", "1", "--finetune-steps", "2",
                 "--finetune-rays", "8", "--finetune-variants", "*:0.5*", "--grid-variants", "*0.5*"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in data["results"]] == [
        "fp32", "prune-activation:0.25:round=1", "prune-activation:0.5:round=1",
        "prune-activation:0.5:round=1, fine-tuned 2 steps"]
    assert "2 steps, 8 rays" in data["settings"]["finetune"]
    assert iio.imread(out / "tradeoff.png").shape[1] > iio.imread(out / "grid.png").shape[1] / 4


def test_report_refuses_bad_finetune_rays(tiny, capsys):
    root, ckpt, scene = tiny
    assert main(["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressors", "bf16",
                 "--out", str(root / "r"), "--finetune-rays", "0"]) == 2
    assert "--finetune-rays" in capsys.readouterr().err
    assert main(["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressors", "bf16",
                 "--out", str(root / "r"), "--finetune-device", "tpu0"]) == 2
    assert "--finetune-device tpu0" in capsys.readouterr().err
    assert not (root / "r").exists()


@pytest.mark.parametrize("command, flags, message", [
    ("compress", ["--compressor", "int8-ptq-both", "--calibration-rays", "0"], "--calibration-rays 0: must be at least 1"),
    ("compress", ["--compressor", "prune-activation:0.3", "--finetune-steps", "-3"], "--finetune-steps -3: must be >= 0"),
    ("render", ["--scale", "2"], "--scale 2: must be in (0, 1]"),
    ("render", ["--fps", "0"], "--fps 0: must be > 0"),
    ("render", ["--fps", "1e-30"], "--fps 1e-30: a GIF plays 0.01 to 100 frames per second"),
    ("render", ["--fps", "inf"], "--fps inf: not a finite number"),
    ("autocompress", ["--max-drop", "nan"], "--max-drop nan: not a finite number"),
    ("render", ["--frames", "0"], "--frames 0: must be at least 1"),
    ("report", ["--repeats", "0"], "--repeats 0: must be at least 1"),
    ("report", ["--latency-rays", "0"], "--latency-rays 0: must be at least 1"),
    ("report", ["--calibration-rays", "-1"], "--calibration-rays -1: must be at least 1"),
    ("report", ["--scale", "0"], "--scale 0: must be in (0, 1]"),
    ("autocompress", ["--budget-minutes", "0"], "--budget-minutes 0: must be > 0"),
    ("autocompress", ["--confirm-views", "0"], "--confirm-views 0: must be at least 1"),
    ("autocompress", ["--scale", "1.5"], "--scale 1.5: must be in (0, 1]"),
])
def test_numeric_options_out_of_range_are_one_line(tiny, capsys, command, flags, message):
    root, ckpt, scene = tiny
    out = root / f"out-{command}.gif" if command == "render" else root / f"out-{command}"
    assert main([command, "--checkpoint", str(ckpt), "--scene", str(scene), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_compress_prunes_and_finetunes(tiny, capsys):
    root, ckpt, scene = tiny
    out = root / "pruned.pt"
    assert main(["compress", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressor",
                 "prune-activation:0.5:round=1", "--out", str(out), "--calibration-rays", "64",
                 "--finetune-steps", "2"]) == 0
    pair = load_any(out)
    assert pair.coarse.config.widths == (16, 16, 16)
    assert pair.meta["compressor"] == "prune-activation:0.5:round=1"


def test_compress_saves_int8_that_evaluate_loads(tiny, capsys):
    root, ckpt, scene = tiny
    out = root / "int8.pt"
    assert main(["compress", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressor", "int8-ptq-both:64",
                 "--out", str(out), "--calibration-rays", "64"]) == 0
    capsys.readouterr()
    assert load_any(out).meta["compressor"] == "int8-ptq-both:64"
    assert main(["evaluate", "--checkpoint", str(out), "--scene", str(scene), "--views", "0",
                 "--n-coarse", "8", "--n-fine", "8", "--no-flip"]) == 0


def test_report_adds_finetuned_rows_for_pruned_variants(tiny):
    root, ckpt, scene = tiny
    out = root / "report-ft"
    assert main(["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressors",
                 "prune-activation:0.5:round=1,bf16", "--finetune-steps", "3", "--out", str(out),
                 "--calibration-rays", "32", "--latency-rays", "16", "--repeats", "1"]) == 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert [r["name"] for r in rows] == ["fp32", "prune-activation:0.5:round=1",
                                         "prune-activation:0.5:round=1, fine-tuned 3 steps", "bf16"]
    assert all(r["error"] is None for r in rows)
    assert rows[2]["size_bytes"] == rows[1]["size_bytes"] and rows[2]["psnr"] != rows[1]["psnr"]
    assert main(["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressors", "bf16",
                 "--finetune-steps", "-1", "--out", str(root / "x")]) == 2


def test_atomic_directory_leaves_the_old_one_when_writing_fails(tmp_path):
    from nerf_eval.report import atomic_directory

    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.txt").write_text("user's")
    with pytest.raises(RuntimeError):
        with atomic_directory(out, overwrite=True) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in out.iterdir()] == ["kept.txt"]
    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]


@pytest.mark.parametrize("name, expected", [
    ("prune-activation:0.3", ("prune-activation", 0.3)),
    ("prune-activation:0.3, fine-tuned 100 steps", ("prune-activation, fine-tuned 100 steps", 0.3)),
    ("mixed:40", ("mixed", 40.0)),
    ("int8-ptq-both", None),
    ("prune-activation:0.3:round=1", None),
])
def test_series_of_groups_a_swept_parameter(name, expected):
    assert series_of(name) == expected


def test_report_extend_reuses_rows_and_measures_only_the_missing_ones(tiny):
    root, ckpt, scene = tiny
    common = ["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--calibration-rays", "32",
              "--latency-rays", "16", "--repeats", "1", "--finetune-steps", "2", "--finetune-rays", "8"]
    first = root / "extend"
    assert main(common + ["--compressors", "prune-activation:0.25:round=1,prune-activation:0.5:round=1",
                          "--finetune-variants", "*:0.5*", "--out", str(first)]) == 0
    before = {r["name"]: r for r in json.loads((first / "results.json").read_text())["results"]}
    grid = (first / "grid.png").read_bytes()
    assert main(common + ["--compressors", "prune-activation:0.25:round=1,bf16", "--extend", str(first),
                          "--out", str(first), "--grid-variants", "none"]) == 0
    data = json.loads((first / "results.json").read_text())
    rows = {r["name"]: r for r in data["results"]}
    assert list(rows) == ["fp32", "prune-activation:0.25:round=1", "prune-activation:0.25:round=1, fine-tuned 2 steps",
                          "bf16", "prune-activation:0.5:round=1", "prune-activation:0.5:round=1, fine-tuned 2 steps"]
    for name in ("prune-activation:0.25:round=1", "prune-activation:0.5:round=1, fine-tuned 2 steps"):
        assert rows[name]["render_time_s"] == before[name]["render_time_s"]  # reused, not re-measured
        assert rows[name]["baseline_time_s"] == before["fp32"]["render_time_s"]
    assert rows["fp32"]["render_time_s"] != before["fp32"]["render_time_s"]
    assert rows["bf16"]["baseline_time_s"] == rows["fp32"]["render_time_s"]
    assert "3 rows reused" in data["settings"]["extended"]
    assert (first / "grid.png").read_bytes() == grid


@pytest.mark.parametrize("document, message", [
    ("[1]", "not a nerf-eval report (TypeError"),
    ('{"settings": [], "results": 5}', "'settings' is not an object or 'results' not a list"),
    ('{"settings": {}, "results": [7]}', "a record is a JSON object with a 'name' string, not 7"),
    ('{"settings": {}, "results": [{"name": "fp32", "psnr": "x"}]}', "record 'fp32': 'psnr' is 'x', expected float"),
    ('{"settings": {}, "results": [{"name": "fp32", "views": 3}]}', "record 'fp32': 'views' is 3, expected list"),
])
def test_report_extend_refuses_a_malformed_report_in_one_line(tiny, capsys, document, message):
    root, ckpt, scene = tiny
    bad = root / "malformed"
    bad.mkdir(exist_ok=True)
    (bad / "results.json").write_text(document)
    assert main(["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressors", "bf16",
                 "--out", str(root / "x5"), "--extend", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "results.json" in err and "\n" not in err
    assert not (root / "x5").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--grid-variants", "bf61", "--grid-variants: 'bf61' matches none of this report's variants (fp32, bf16, "),
    ("--grid-variants", " , ", "--grid-variants: no variant names or globs given"),
    ("--finetune-variants", "prune-*:0.9*",
     "--finetune-variants: 'prune-*:0.9*' matches none of this report's variants"),
])
def test_report_refuses_variant_globs_that_match_nothing_before_any_work(tiny, capsys, option, value, message):
    root, ckpt, scene = tiny
    out = root / "typo"
    assert main(["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressors",
                 "bf16,prune-activation:0.25:round=1", "--finetune-steps", "2", option, value, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()


def test_report_extend_refuses_a_report_with_other_settings(tiny, capsys):
    root, ckpt, scene = tiny
    out = root / "extend-other"
    base = ["report", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressors", "bf16",
            "--calibration-rays", "32", "--latency-rays", "16", "--repeats", "1"]
    assert main(base + ["--out", str(out)]) == 0
    capsys.readouterr()
    assert main(base + ["--out", str(root / "x2"), "--extend", str(out), "--scale", "0.5"]) == 2
    assert "scale=1.0" in capsys.readouterr().err
    assert main(base + ["--out", str(root / "x3"), "--extend", str(root / "nothing")]) == 2
    assert "no such report" in capsys.readouterr().err
    assert not (root / "x2").exists() and not (root / "x3").exists()
    tuned = root / "extend-tuned"
    fine = ["--finetune-steps", "2", "--finetune-rays", "8"]
    assert main(base + fine + ["--out", str(tuned)]) == 0
    recipe = json.loads((tuned / "results.json").read_text())["settings"]["finetune_recipe"]
    assert recipe["steps"] == 2 and recipe["rays"] == 8
    assert "finetune_recipe" not in (tuned / "results.md").read_text()
    capsys.readouterr()
    assert main(base + ["--finetune-steps", "3", "--finetune-rays", "8", "--out", str(root / "x4"),
                        "--extend", str(tuned)]) == 2
    assert "steps=2, this run's has steps=3" in capsys.readouterr().err
    assert main(base + fine + ["--finetune-variants", "none", "--out", str(root / "x5"), "--extend", str(tuned)]) == 0
    assert not (root / "x4").exists()
    # the arithmetic is part of the recipe; pinning the other one cannot extend, pinning the same one can
    same = "bf16" if recipe["arithmetic"].startswith("bf16") else "fp32"
    other = {"bf16": "fp32", "fp32": "bf16"}[same]
    capsys.readouterr()
    assert main(base + fine + ["--finetune-arithmetic", other, "--finetune-variants", "none", "--out",
                               str(root / "x6"), "--extend", str(tuned)]) == 2
    assert "arithmetic=" in capsys.readouterr().err
    assert main(base + fine + ["--finetune-arithmetic", same, "--finetune-variants", "none", "--out",
                               str(root / "x7"), "--extend", str(tuned)]) == 0


def test_speedup_uses_the_rows_own_fp32_time():
    from nerf_eval.report import speedup

    base = {"name": "fp32", "render_time_s": 10.0}
    assert speedup({"render_time_s": 5.0}, base) == 2.0
    assert speedup({"render_time_s": 5.0, "baseline_time_s": 20.0}, base) == 4.0
    assert math.isnan(speedup({"render_time_s": float("nan")}, base))


def test_tradeoff_plot_gives_a_rule_and_its_fine_tuned_sweep_one_colour(tmp_path, monkeypatch):
    import matplotlib.figure

    from nerf_eval.report import tradeoff_plot

    figures = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    rows = [{"name": "fp32", "psnr": 25.0, "size_bytes": 4_000_000, "render_time_s": 10.0}]
    for i, rule in enumerate(f"rule{k}" for k in range(12)):
        for ratio in (0.3, 0.5):
            for suffix in ("", ", fine-tuned 5 steps"):
                rows.append({"name": f"{rule}:{ratio}{suffix}", "psnr": 20.0 - i, "size_bytes": 2_000_000,
                             "render_time_s": 5.0})
    tradeoff_plot(rows, tmp_path / "t.png")
    colours = {line.get_label(): line.get_color() for line in figures[0].axes[0].get_lines()}
    assert colours["rule3"] == colours["rule3, fine-tuned 5 steps"]
    assert len({colours[f"rule{k}"] for k in range(12)}) == 12


def test_tradeoff_plot_places_rows_at_their_paired_speedup(tmp_path, monkeypatch):
    """Render-pass times are taken minutes apart; where a row has a paired speed-up the plot uses it."""
    import matplotlib.figure

    from nerf_eval.report import tradeoff_plot

    figures = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    rows = [{"name": "fp32", "psnr": 25.0, "size_bytes": 4_000_000, "render_time_s": 10.0, "speedup": 1.0},
            {"name": "paired", "psnr": 24.0, "size_bytes": 2_000_000, "render_time_s": 20.0, "speedup": 3.0},
            {"name": "unpaired", "psnr": 23.0, "size_bytes": 2_000_000, "render_time_s": 5.0}]
    tradeoff_plot(rows, tmp_path / "t.png")
    speed_axis = figures[0].axes[1]
    placed = {t.get_text(): t.xy[0] for t in speed_axis.texts}
    assert placed == {"fp32": 1.0, "paired": 3.0, "unpaired": 2.0}
