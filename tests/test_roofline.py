"""The roofline report: FLOPs of every network kind, its precision, and a render's time split by stage."""

import json

import pytest
import torch

from nerf_eval.checkpoint import save_checkpoint
from nerf_eval.cli import main
from nerf_eval.compress import get_compressor
from nerf_eval.compress.cast import cast_pair
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import RenderSettings, StageClock, render_chunked
from nerf_eval.roofline import (STAGES, measure_roofline, network_dtype, network_flops_per_point, roofline_markdown,
                                roofline_plot)
from nerf_eval.scenes.procedural import make_scene
from nerf_eval.throughput import mlp_flops_per_point

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)
FAST = RenderSettings(n_coarse=8, n_fine=8, chunk=64)


@pytest.fixture(scope="module")
def scene():
    return make_scene("object", size=12)[0]


@pytest.fixture(scope="module")
def models(scene):
    pair = ModelPair.create(TINY, seed=1).eval()
    cal = scene.sample_rays(256, "train", 0)
    return {"fp32": pair, "bf16": cast_pair(pair, torch.bfloat16),
            "int8-ptq-both": get_compressor("int8-ptq-both").compress(pair, cal),
            "prune-random:0.5": get_compressor("prune-random:0.5").compress(pair, cal)}


def test_flops_are_counted_alike_for_every_kind_of_network(models):
    want = mlp_flops_per_point(TINY)
    assert network_flops_per_point(models["fp32"].fine) == want
    assert network_flops_per_point(models["bf16"].fine) == want
    assert network_flops_per_point(models["int8-ptq-both"].fine) == want
    assert 0 < network_flops_per_point(models["prune-random:0.5"].fine) < want


def test_network_dtype_names_the_precision_of_the_work(models):
    assert [network_dtype(m.fine) for m in models.values()] == ["fp32", "bf16", "int8", "fp32"]


def test_the_stage_clock_splits_a_render_without_changing_it(models, scene):
    rays = scene.rays(scene.split("test")[0])
    clock = StageClock()
    timed = render_chunked(models["fp32"], rays, FAST, clock=clock)
    plain = render_chunked(models["fp32"], rays, FAST)
    assert torch.equal(timed["rgb"], plain["rgb"])
    assert set(clock.seconds) == set(STAGES) and all(v > 0 for v in clock.seconds.values())


def test_roofline_report_table_json_and_plot(models, scene, tmp_path):
    rays = scene.rays(scene.split("test")[0])
    r = measure_roofline(models, rays, FAST, rounds=3, mlp_points=512, gemm_rows=256)
    assert set(r.roofs) == {"fp32", "bf16", "fp16", "int8"} and all(v > 0 for v in r.roofs.values())
    assert [m.name for m in r.models] == list(models)
    for m in r.models:
        assert m.roof_gflops == r.roofs[m.dtype] and m.render_gflops > 0 and m.mlp_gflops > 0
        assert sum(m.stages_s.values()) <= m.render_s  # the stages of the round whose render time is reported
    md = roofline_markdown(r)
    assert "| int8-ptq-both | int8 |" in md and r.machine["int8_engine"] in md
    roofline_plot(r, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000
    json.dumps(r.to_dict())


def test_cli_roofline_writes_its_directory_and_refuses_to_overwrite(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "tiny.pt", ModelPair.create(TINY, seed=2))
    out = tmp_path / "roof"
    argv = ["roofline", "--checkpoint", str(ckpt), "--scene", "object:size=12", "--compressors", "fp32,int8-ptq-both",
            "--rays", "64", "--rounds", "1", "--calibration-rays", "256", "--out", str(out)]
    assert main(argv) == 0
    assert {p.name for p in out.iterdir()} == {"roofline.md", "roofline.json", "roofline.png"}
    assert "| int8-ptq-both | int8 |" in capsys.readouterr().out
    assert main(argv) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--compressors", ""], "--compressors '': names no model to measure"),
    (["--compressors", " , "], "--compressors ' , ': names no model to measure"),
    (["--threads", "999999999"], "--threads 999999999: must be between 1 and this machine's"),
])
def test_cli_roofline_refuses_nothing_to_measure_and_absurd_threads(tmp_path, capsys, flags, message):
    ckpt = save_checkpoint(tmp_path / "tiny.pt", ModelPair.create(TINY, seed=2))
    threads = torch.get_num_threads()
    assert main(["roofline", "--checkpoint", str(ckpt), "--scene", "object:size=12", "--rays", "8", "--rounds", "1",
                 "--calibration-rays", "16", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nerf-eval: error: {message}") and len(err.splitlines()) == 1
    assert torch.get_num_threads() == threads
