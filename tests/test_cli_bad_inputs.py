"""Issue 20 through the command line: bad output locations are refused before any work, a checkpoint
without fine weights is rendered as nerf-pytorch renders it (and says so), a tiny --scale is refused,
a nerf-pytorch .tar cannot be resumed, and compressing twice gives byte-identical files."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch

import nerf_eval.checkpoint
import nerf_eval.compress.saved
from nerf_eval.checkpoint import file_hash, save_checkpoint
from nerf_eval.cli import main
from nerf_eval.evaluate import evaluate
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import RenderSettings
from nerf_eval.scenes import load_scene
from nerf_eval.scenes.blender import write_blender
from nerf_eval.scenes.procedural import make_scene

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)
FAST = ["--n-coarse", "8", "--n-fine", "8", "--no-flip"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    scene = write_blender(make_scene("object", size=8)[0], root / "scene")
    ckpt = save_checkpoint(root / "tiny.pt", ModelPair.create(TINY, seed=1))
    (root / "a_file").write_text("not a directory")
    return root, ckpt, scene


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if "it/s" not in ln and "view/s" not in ln and "s/it" not in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith("nerf-eval: error: ")
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Loading a model is the first piece of work each command does: make it fail loudly."""
    def work(*args, **kwargs):
        raise AssertionError("the command started working before checking where its output goes")

    monkeypatch.setattr(nerf_eval.checkpoint, "load_checkpoint", work)
    monkeypatch.setattr(nerf_eval.compress.saved, "load_any", work)


@pytest.mark.parametrize("make_argv, pattern", [
    (lambda r, c, s: ["compress", "--checkpoint", c, "--scene", s, "--compressor", "bf16", "--out", r / "adir",
                      "--force"], r"adir: is a directory; the compressed model needs a file name"),
    (lambda r, c, s: ["compress", "--checkpoint", c, "--scene", s, "--compressor", "bf16",
                      "--out", r / "a_file" / "c.pt"], r"a_file/c\.pt: cannot write the compressed model there: .*"
                                                       r"a_file is a file, not a directory"),
    (lambda r, c, s: ["report", "--checkpoint", c, "--scene", s, "--compressors", "bf16", "--out", r / "a_file" / "r"],
     r"a_file/r: cannot write the report directory there: .*a_file is a file"),
    (lambda r, c, s: ["evaluate", "--checkpoint", c, "--scene", s, "--json", r / "a_file" / "sub" / "x.json", *FAST],
     r"a_file/sub/x\.json: cannot write the --json file there: .*a_file is a file"),
    (lambda r, c, s: ["evaluate", "--checkpoint", c, "--scene", s, "--save", r / "a_file" / "renders", *FAST],
     r"a_file/renders: cannot write the --save directory there"),
    (lambda r, c, s: ["render", "--checkpoint", c, "--scene", s, "--out", r / "a_file" / "p.gif"],
     r"a_file/p\.gif: cannot write the GIF there"),
    (lambda r, c, s: ["render", "--checkpoint", c, "--scene", s, "--out", r / "a_file" / "frames"],
     r"a_file/frames: cannot write the frames directory there"),
])
def test_output_locations_are_refused_before_any_work(files, capsys, no_work, make_argv, pattern):
    root, ckpt, scene = files
    (root / "adir").mkdir(exist_ok=True)
    rc, _, err = run(capsys, *make_argv(root, ckpt, scene))
    assert rc == 2
    assert re.search(pattern, error_line(err)), err
    assert (root / "a_file").read_text() == "not a directory"


def test_nerf_pytorch_checkpoint_without_fine_weights(files, capsys, tmp_path):
    root, _, scene = files
    pair = ModelPair.create(TINY, seed=6)
    torch.save({"global_step": 1000, "network_fn_state_dict": pair.coarse.state_dict()}, tmp_path / "coarse.tar")
    out_json = tmp_path / "e.json"
    rc, _, err = run(capsys, "evaluate", "--checkpoint", tmp_path / "coarse.tar", "--scene", scene, "--views", "0",
                     "--json", out_json, *FAST)
    assert rc == 0
    notes = [ln for ln in err.splitlines() if "network_fine_state_dict" in ln]
    assert notes == [f"{tmp_path / 'coarse.tar'}: no network_fine_state_dict; its 8 fine samples per ray go through "
                     "the coarse network, as nerf-pytorch does"]
    doc = json.loads(out_json.read_text())
    assert doc["settings"]["fine_network"] == "coarse" and doc["settings"]["n_fine"] == 8
    ref = evaluate(ModelPair(pair.coarse, pair.coarse, TINY), load_scene(scene), doc["views"], RenderSettings(8, 8),
                   progress=False, with_flip=False)
    assert doc["mean"]["psnr"] == ref.mean["psnr"]


def test_coarse_only_model_reports_no_fine_pass(files, capsys, tmp_path):
    root, _, scene = files
    ckpt = save_checkpoint(tmp_path / "c.pt", ModelPair.create(TINY, with_fine=False))
    rc, out, err = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--views", "0",
                       "--json", tmp_path / "e.json", *FAST)
    assert rc == 0 and "8+0 samples" in out and "a coarse-only model" in err
    settings = json.loads((tmp_path / "e.json").read_text())["settings"]
    assert (settings["fine_network"], settings["n_fine"]) == ("none", 0)


def test_tiny_scale_is_one_line_without_warnings(files, capsys, tmp_path):
    root, ckpt, scene = files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc, _, err = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--scale", "0.0001",
                         "--json", tmp_path / "e.json", *FAST)
    assert rc == 2
    assert "scale 0.0001 makes its 8x8 views 1x1 pixels; need at least 4 on a side" in error_line(err)
    assert not (tmp_path / "e.json").exists()


def test_resuming_a_nerf_pytorch_tar_is_one_line(files, capsys, tmp_path):
    root, _, scene = files
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pair = ModelPair.create(TINY, seed=2)
    torch.save({"global_step": 5, "network_fn_state_dict": pair.coarse.state_dict(),
                "network_fine_state_dict": pair.fine.state_dict(),
                "optimizer_state_dict": {"state": {}, "param_groups": []}}, run_dir / "checkpoint.pt")
    before = file_hash(run_dir / "checkpoint.pt")
    rc, _, err = run(capsys, "train", "--scene", scene, "--out", run_dir, "--resume", "--steps", "1",
                     "--no-bf16", "--batch-rays", "8", "--n-coarse", "4", "--n-fine", "4")
    assert rc == 2
    assert "checkpoint.pt: not a checkpoint this trainer wrote" in error_line(err)
    assert file_hash(run_dir / "checkpoint.pt") == before and sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.pt"]


def test_compressing_twice_gives_identical_files(files, capsys):
    root, ckpt, scene = files
    hashes = []
    for name in ("one.pt", "two.pt"):
        rc, _, _ = run(capsys, "compress", "--checkpoint", ckpt, "--scene", scene, "--compressor", "int8-dynamic",
                       "--calibration-rays", "64", "--out", root / "sub" / name)
        assert rc == 0
        hashes.append(file_hash(root / "sub" / name))
    assert hashes[0] == hashes[1]
    assert sorted(p.name for p in (root / "sub").iterdir()) == ["one.pt", "two.pt"]


def test_compress_force_replaces_an_existing_file(files, capsys):
    root, ckpt, scene = files
    target = root / "forced.pt"
    target.write_bytes(b"old")
    rc, _, _ = run(capsys, "compress", "--checkpoint", ckpt, "--scene", scene, "--compressor", "bf16",
                   "--calibration-rays", "64", "--out", target, "--force")
    assert rc == 0 and target.read_bytes() != b"old"


@pytest.mark.parametrize("error, line", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                  "tried to allocate 255999999744 bytes. Error code 12 (Cannot allocate memory)"),
     "out of memory (an allocation of 238.4 GiB): a ray, sample or chunk count given is too large"),
    (MemoryError(), "out of memory: a ray, sample or chunk count given is too large"),
])
def test_running_out_of_memory_is_one_line(files, capsys, monkeypatch, error, line):
    """A count too large for the machine (`--n-coarse 999999999`) fails in torch's allocator; the command
    says so in one line instead of a traceback (raised here by the model loader: a real allocation of that
    size could succeed and swap on a machine that overcommits memory)."""
    root, ckpt, scene = files

    def allocate(*args, **kwargs):
        raise error

    monkeypatch.setattr(nerf_eval.compress.saved, "load_any", allocate)
    rc, _, err = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, *FAST)
    assert rc == 2
    assert error_line(err).startswith(f"nerf-eval: error: {line}")


def test_other_runtime_errors_keep_their_traceback(files, monkeypatch):
    root, ckpt, scene = files

    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not a bad input")

    monkeypatch.setattr(nerf_eval.compress.saved, "load_any", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["evaluate", "--checkpoint", str(ckpt), "--scene", str(scene), *FAST])
