"""`nerf-eval evaluate`: metrics table, JSON record, saved renders, refusals and one-line errors."""

import json
import re

import imageio.v3 as iio
import numpy as np
import pytest
import torch

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
    root = tmp_path_factory.mktemp("eval")
    ckpt = save_checkpoint(root / "tiny.pt", ModelPair.create(TINY, seed=2))
    scene = write_blender(make_scene("object", size=12)[0], root / "scene")
    return ckpt, scene


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str) -> str:
    """The stderr of a failed run: exactly one line (tqdm output excepted)."""
    lines = [ln for ln in err.strip().splitlines() if "it/s" not in ln and "view/s" not in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith("nerf-eval: error: ")
    return lines[0]


def test_evaluate_prints_a_table_and_writes_json(files, capsys, tmp_path):
    ckpt, scene = files
    out_json = tmp_path / "r" / "eval.json"
    rc, out, _ = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--views", "0,3",
                     "--json", out_json, *FAST)
    assert rc == 0
    assert "psnr" in out and "mean" in out and "worst view" in out
    doc = json.loads(out_json.read_text())
    assert doc["checkpoint_sha256"] == file_hash(ckpt)
    assert doc["views"] == [90, 93] and [v["view"] for v in doc["per_view"]] == [90, 93]
    assert doc["settings"]["n_coarse"] == 8 and doc["settings"]["flip"] is False
    assert doc["scene"]["split"] == "test" and doc["scene"]["width"] == 12
    assert doc["mean"]["worst_view"] in (90, 93)
    # the figures are those of the library's own evaluation
    from nerf_eval.checkpoint import load_checkpoint

    ref = evaluate(load_checkpoint(ckpt), load_scene(scene), [90, 93], RenderSettings(8, 8), progress=False,
                   with_flip=False)
    assert doc["mean"]["psnr"] == pytest.approx(ref.mean["psnr"], rel=1e-6)
    assert doc["mean"]["depth_error"] == pytest.approx(ref.mean["depth_error"], rel=1e-6)
    assert f"{ref.mean['psnr']:.4f}" in out


def test_evaluate_refuses_to_overwrite_json_unless_forced(files, capsys, tmp_path):
    ckpt, scene = files
    out_json = tmp_path / "eval.json"
    out_json.write_text("keep me")
    rc, _, err = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--views", "0",
                     "--json", out_json, *FAST)
    assert rc == 2 and "refusing to overwrite" in error_line(err)
    assert out_json.read_text() == "keep me"
    rc, _, _ = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--views", "0",
                   "--json", out_json, "--force", *FAST)
    assert rc == 0 and json.loads(out_json.read_text())["views"] == [90]


def test_evaluate_saves_renders(files, capsys, tmp_path):
    ckpt, scene = files
    save = tmp_path / "renders"
    rc, _, _ = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--split", "val", "--views", "1",
                   "--save", save, *FAST)
    assert rc == 0
    assert sorted(p.name for p in save.iterdir()) == ["view_086.png", "view_086_depth.npy", "view_086_rgb.npy"]
    rgb = np.load(save / "view_086_rgb.npy")
    assert rgb.shape == (12, 12, 3) and rgb.dtype == np.float32
    assert np.load(save / "view_086_depth.npy").shape == (12, 12)
    assert np.abs(iio.imread(save / "view_086.png") / 255.0 - rgb).max() <= 0.5 / 255 + 1e-6
    rc, _, err = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--views", "1", "--save", save,
                     *FAST)
    assert rc == 2 and "not empty" in error_line(err)


def test_evaluate_scale_and_bounds(files, capsys, tmp_path):
    ckpt, scene = files
    out_json = tmp_path / "e.json"
    rc, _, _ = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--views", "0", "--scale", "0.5",
                   "--near", "1.5", "--far", "7", "--chunk", "10", "--json", out_json, *FAST)
    assert rc == 0
    doc = json.loads(out_json.read_text())
    assert doc["scene"]["width"] == 6 and (doc["scene"]["near"], doc["scene"]["far"]) == (1.5, 7.0)
    assert doc["settings"]["chunk"] == 10


def test_evaluate_with_flip(files, capsys, tmp_path):
    ckpt, scene = files
    out_json = tmp_path / "f.json"
    rc, out, _ = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--views", "0",
                     "--n-coarse", "8", "--n-fine", "0", "--json", out_json)
    assert rc == 0 and "flip" in out
    assert 0.0 <= json.loads(out_json.read_text())["mean"]["flip"] <= 1.0


@pytest.fixture
def llff_dir(tmp_path):
    """A 3-view LLFF capture: identity rotations, cameras side by side, 16x16 PNGs (2x2 at factor 8)."""
    root = tmp_path / "llff"
    (root / "images").mkdir(parents=True)
    rows = []
    for k in range(3):
        mat = np.stack([[0, -1, 0], [1, 0, 0], [0, 0, 1], [0.2 * k, 0, 0], [16, 16, 20.0]], 1)  # [down, right, back]
        rows.append(np.concatenate([mat.ravel(), [2.0, 8.0]]))
        pixels = np.random.default_rng(k).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        iio.imwrite(root / "images" / f"{k}.png", pixels)
    np.save(root / "poses_bounds.npy", np.array(rows))
    return root


@pytest.mark.parametrize("args, pattern", [
    (["--checkpoint", "{tmp}/absent.pt"], "absent.pt: no such checkpoint file"),
    (["--checkpoint", "{tmp}/junk.pt"], "junk.pt: not a readable torch checkpoint"),
    (["--scene", "teapot"], "teapot: unknown scene"),
    (["--scene", "{tmp}/nowhere/scene"], "not found"),
    (["--views", "0,x"], "--views '0,x': expected comma-separated"),
    (["--views", "99"], r"views \[99\] out of range"),
    (["--split", "holdout"], "no split 'holdout'"),
    (["--scale", "2"], "--scale 2: must be in"),
    (["--near", "5", "--far", "3"], "need 0 <= near < far"),
    (["--far", "inf"], "far is inf, not a finite number"),
    (["--far", "1e39"], "beyond float32's range"),
    (["--n-coarse", "2"], "n_coarse >= 2"),
    (["--chunk", "0"], "--chunk 0"),
    (["--json", "{tmp}"], "is a directory"),
    (["--device", "tpu0"], "--device tpu0: "),
])
def test_bad_inputs_exit_2_with_one_line(files, capsys, tmp_path, args, pattern):
    ckpt, scene = files
    (tmp_path / "junk.pt").write_bytes(b"\x00\x01garbage")
    base = {"--checkpoint": str(ckpt), "--scene": str(scene)}
    given = [a.replace("{tmp}", str(tmp_path)) for a in args]
    for flag, value in base.items():
        if flag not in given:
            given += [flag, value]
    rc, out, err = run(capsys, "evaluate", *FAST, *given)
    assert rc == 2
    assert re.search(pattern, error_line(err))


def test_bounds_are_refused_for_ndc_scenes(files, capsys, llff_dir):
    ckpt, _ = files
    rc, _, err = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", llff_dir, "--near", "1", *FAST)
    assert rc == 2 and "NDC" in error_line(err)


def test_evaluate_on_an_npz_scene(capsys, files, tmp_path):
    ckpt, _ = files
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "s.npz", images=rng.random((10, 12, 12, 3)), focal=np.array(12.0),
             poses=make_scene("object", size=12)[0].poses[:10].numpy())
    rc, out, _ = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", tmp_path / "s.npz", *FAST)
    assert rc == 0 and "depth_error" not in out  # no ground-truth depth in an .npz


def test_evaluate_on_an_llff_scene(files, capsys, llff_dir, tmp_path):
    ckpt, _ = files
    out_json = tmp_path / "l.json"
    rc, _, _ = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", llff_dir, "--json", out_json, *FAST)
    assert rc == 0
    doc = json.loads(out_json.read_text())
    assert doc["scene"]["ndc"] is True and doc["views"] == [0] and doc["settings"]["white_bkgd"] is False


def test_empty_split_is_refused(files, capsys, tmp_path):
    ckpt, scene = files
    (tmp_path / "s").mkdir()
    for f in ("transforms_train.json", "train"):
        (tmp_path / "s" / f).symlink_to(scene / f)
    (tmp_path / "s" / "transforms_test.json").write_text('{"camera_angle_x": 0.69, "frames": []}')
    rc, _, err = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", tmp_path / "s", *FAST)
    assert rc == 2 and "split 'test' has no views" in error_line(err)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")
def test_evaluate_on_cuda_matches_cpu(files, capsys, tmp_path):
    ckpt, scene = files
    docs = []
    for device in ("cpu", "cuda"):
        out_json = tmp_path / f"{device}.json"
        rc, _, _ = run(capsys, "evaluate", "--checkpoint", ckpt, "--scene", scene, "--views", "0",
                       "--device", device, "--json", out_json, *FAST)
        assert rc == 0
        docs.append(json.loads(out_json.read_text()))
    assert docs[1]["device"] == "cuda"
    assert docs[1]["mean"]["psnr"] == pytest.approx(docs[0]["mean"]["psnr"], abs=1e-3)
