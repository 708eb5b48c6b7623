"""Training: the loss falls, resume is exact, an interrupted run leaves a loadable checkpoint."""

from __future__ import annotations

import dataclasses
import json
import platform
import signal
import subprocess
import sys

import pytest
import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.cli import main
from nerf_eval.errors import CheckpointError
from nerf_eval.model import NeRFConfig
from nerf_eval.scenes.procedural import make_scene
from nerf_eval.train import TrainConfig, Trainer, TrainingDiverged

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)


@pytest.fixture(scope="module")
def tiny_scene():
    return make_scene("object", size=12)


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=8, batch_rays=64, n_coarse=8, n_fine=8, lr=5e-3, lr_final=1e-3, precrop_steps=2,
                bf16=False, seed=3, checkpoint_every_s=1e9)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_decreases_on_tiny_scene(tiny_scene):
    scene, _ = tiny_scene
    tr = Trainer(scene, _cfg(steps=40), TINY)
    losses = []
    for _ in range(40):
        losses.append(tr.photometric_step()["loss"])
        tr.step += 1
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8


def test_warmstart_lowers_field_loss(tiny_scene):
    scene, analytic = tiny_scene
    tr = Trainer(scene, _cfg(warmstart_steps=30, warmstart_points=512), TINY, analytic=analytic)
    losses = []
    for _ in range(30):
        losses.append(tr.warmstart_step()["loss"])
        tr.step += 1
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_resume_continues_exactly(tiny_scene, tmp_path):
    scene, analytic = tiny_scene
    cfg = _cfg(steps=6, warmstart_steps=2, warmstart_points=256)
    straight = Trainer(scene, cfg, TINY, analytic=analytic)
    straight.run(tmp_path / "a" / "checkpoint.pt", progress=False)

    first = Trainer(scene, cfg, TINY, analytic=analytic)

    def stop_at_4(step, _stats):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        first.run(tmp_path / "b" / "checkpoint.pt", progress=False, on_step=stop_at_4)
    resumed = Trainer(scene, cfg, TINY, analytic=analytic)
    resumed.load(tmp_path / "b" / "checkpoint.pt")
    assert resumed.step == 4
    assert resumed.optimizer.state_dict()["state"][0]["step"] == first.optimizer.state_dict()["state"][0]["step"]
    resumed.run(tmp_path / "b" / "checkpoint.pt", progress=False)
    for a, b in zip(straight.pair.fine.state_dict().values(), resumed.pair.fine.state_dict().values()):
        assert torch.equal(a, b)


def test_interrupted_run_leaves_loadable_checkpoint(tiny_scene, tmp_path):
    scene, _ = tiny_scene
    tr = Trainer(scene, _cfg(steps=10), TINY)

    def interrupt(step, _stats):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tr.run(tmp_path / "checkpoint.pt", progress=False, on_step=interrupt)
    pair = load_checkpoint(tmp_path / "checkpoint.pt")
    assert pair.meta["global_step"] == 3
    assert pair.coarse.config == TINY


def test_a_diverging_run_stops_in_one_line_and_keeps_its_last_finite_checkpoint(tiny_scene, tmp_path):
    """A learning rate far too high turns the weights, then the loss, into inf/NaN; the run stops there
    instead of writing NaN weights over its checkpoint (and exiting 0)."""
    scene, _ = tiny_scene
    path = tmp_path / "checkpoint.pt"
    tr = Trainer(scene, _cfg(steps=10), TINY)

    def save_then_raise_the_lr(step, _stats):
        if step == 2:
            tr.save(path)
            tr.cfg = dataclasses.replace(tr.cfg, lr=1e30, lr_final=1e30)

    with pytest.raises(TrainingDiverged, match=r"checkpoint\.pt: training diverged at step \d+ \((the loss is nan|its "
                                               r"weights are no longer finite); the learning rate was 1e\+30\); "
                                               r".*checkpoint\.pt keeps step 2$"):
        tr.run(path, progress=False, on_step=save_then_raise_the_lr)
    assert load_checkpoint(path).meta["global_step"] == 2


def test_cli_train_that_diverges_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--scene", "object:size=8", "--out", str(out), "--steps", "5", "--batch-rays", "16",
               "--n-coarse", "4", "--n-fine", "4", "--lr", "1e30", "--lr-final", "1e30", "--no-bf16"])
    err = [line for line in capsys.readouterr().err.splitlines() if "nerf-eval: error:" in line]
    assert rc == 2 and len(err) == 1 and "training diverged at step" in err[0]
    assert not (out / "checkpoint.pt").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_step_stops_the_run_before_the_next_one(tiny_scene, tmp_path, signum):
    """The signal arrives inside step 3 (the callback runs within it); the step finishes, the run stops
    at the stop point before step 4 and saves step 3."""
    scene, _ = tiny_scene
    tr = Trainer(scene, _cfg(steps=10), TINY)
    before = signal.getsignal(signum)

    def signal_in_step_3(step, _stats):
        if step == 3:
            signal.raise_signal(signum)

    with pytest.raises(KeyboardInterrupt):
        tr.run(tmp_path / "checkpoint.pt", progress=False, on_step=signal_in_step_3)
    assert load_checkpoint(tmp_path / "checkpoint.pt").meta["global_step"] == 3
    assert signal.getsignal(signum) is before


def test_resume_refuses_other_settings(tiny_scene, tmp_path):
    scene, _ = tiny_scene
    Trainer(scene, _cfg(steps=2), TINY).run(tmp_path / "checkpoint.pt", progress=False)
    other = Trainer(scene, _cfg(steps=2, batch_rays=32), TINY)
    with pytest.raises(CheckpointError, match="batch_rays"):
        other.load(tmp_path / "checkpoint.pt")
    wider = Trainer(scene, _cfg(steps=2), NeRFConfig(depth=3, width=48, skips=(1,), multires=4,
                                                       multires_views=2, view_width=16))
    with pytest.raises(CheckpointError, match="model config"):
        wider.load(tmp_path / "checkpoint.pt")
    switched = Trainer(scene, _cfg(steps=4, bf16=True), TINY)  # precision and length may change on resume
    switched.load(tmp_path / "checkpoint.pt")
    assert switched.step == 2 and switched.cfg.bf16


def test_cli_refuses_non_empty_out_and_unknown_scene(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    assert main(["train", "--scene", "object", "--out", str(out), "--steps", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "user data"
    assert main(["train", "--scene", "no-such-scene", "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown scene" in err and len(err.splitlines()) == 1
    assert main(["train", "--scene", "object", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")


def test_cli_refuses_unusable_device(tmp_path, capsys):
    assert main(["train", "--scene", "object", "--out", str(tmp_path / "a"), "--device", "tpu0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--device tpu0" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "a").exists()
    if not torch.cuda.is_available():
        assert main(["train", "--scene", "object", "--out", str(tmp_path / "b"), "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
        assert not (tmp_path / "b").exists()


def test_history_records_device_and_card_sums_it(tiny_scene, tmp_path):
    from nerf_eval.card import training_devices

    scene, _ = tiny_scene
    tr = Trainer(scene, _cfg(steps=50), TINY)
    tr.run(tmp_path / "checkpoint.pt", progress=False)
    assert {h["device"] for h in tr.history} == {"cpu"}
    legacy = [{"step": 25, "wall_time_s": 10.0}, {"step": 50, "wall_time_s": 20.0}]
    moved = legacy + [{"step": 75, "wall_time_s": 20.5, "device": "cuda"}, {"step": 80, "wall_time_s": 20.6,
                                                                          "device": "cuda"}]
    assert training_devices(moved) == {"cpu": {"steps": 50, "wall_time_s": 20.0},
                                       "cuda": {"steps": 30, "wall_time_s": 0.6}}


@cuda
def test_cuda_run_saves_cpu_tensors_and_resumes_on_cpu(tiny_scene, tmp_path):
    scene, analytic = tiny_scene
    cfg = _cfg(steps=6, warmstart_steps=2, warmstart_points=256, bf16=True)
    gpu = Trainer(scene, cfg, TINY, analytic=analytic, device="cuda")

    def stop_at_4(step, _stats):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gpu.run(tmp_path / "checkpoint.pt", progress=False, on_step=stop_at_4)
    obj = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in obj["network_fine_state_dict"].values())
    cpu = Trainer(scene, cfg, TINY, analytic=analytic)
    cpu.load(tmp_path / "checkpoint.pt")
    assert cpu.step == 4
    cpu.run(tmp_path / "checkpoint.pt", progress=False)
    assert cpu.step == 8 and all(torch.isfinite(p).all() for p in cpu.pair.fine.parameters())
    back = Trainer(scene, _cfg(steps=10, warmstart_steps=2, warmstart_points=256, bf16=True), TINY,
                   analytic=analytic, device="cuda")
    back.load(tmp_path / "checkpoint.pt")
    assert back.pair.device.type == "cuda"
    losses = [back.photometric_step()["loss"] for _ in range(2)]
    assert all(x == x for x in losses)


@cuda
def test_cuda_render_matches_cpu(tiny_scene):
    from nerf_eval.model import ModelPair
    from nerf_eval.render import RenderSettings, render_chunked

    scene, _ = tiny_scene
    pair = ModelPair.create(TINY, seed=1).eval()
    rays = scene.rays(0)
    settings = RenderSettings(n_coarse=16, n_fine=16, chunk=50)
    on_cpu = render_chunked(pair, rays, settings)
    on_gpu = render_chunked(pair.to("cuda"), rays, settings)
    assert on_gpu["rgb"].device.type == "cpu"
    assert torch.allclose(on_cpu["rgb"], on_gpu["rgb"], atol=1e-4)
    assert torch.allclose(on_cpu["depth"], on_gpu["depth"], atol=1e-3)


def test_estimate_times_each_phase_and_leaves_the_run_as_it_was(tiny_scene):
    scene, analytic = tiny_scene
    tr = Trainer(scene, _cfg(steps=6, warmstart_steps=4, warmstart_points=256), TINY, analytic=analytic)
    tr.warmstart_step()
    tr.step = 1
    before = {k: v.clone() for k, v in tr.pair.fine.state_dict().items()}
    rng = tr.generator.get_state()
    est = tr.estimate(probes=2)
    assert est["steps_left"] == {"warmstart": 3, "photometric": 6}
    assert set(est["per_step_s"]) == {"warmstart", "photometric"} and all(s > 0 for s in est["per_step_s"].values())
    assert est["seconds"] == pytest.approx(sum(est["per_step_s"][p] * n for p, n in est["steps_left"].items()), abs=0.1)
    assert tr.step == 1 and torch.equal(tr.generator.get_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in tr.pair.fine.state_dict().items())
    tr.step = 10
    assert tr.estimate(probes=1)["steps_left"] == {"warmstart": 0, "photometric": 0}


def test_cli_estimate_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--scene", "object", "--out", str(out), "--steps", "5", "--batch-rays", "16",
                 "--n-coarse", "4", "--n-fine", "4", "--no-bf16", "--scale", "0.1", "--estimate"]) == 0
    captured = capsys.readouterr()
    assert "5 photometric steps x" in captured.err
    assert json.loads(captured.out)["steps_left"]["photometric"] == 5
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--steps", "-1"], "--steps -1: must be >= 0"),
    (["--steps", "0"], "nothing to train"),
    (["--batch-rays", "0"], "--batch-rays 0: must be at least 1"),
    (["--n-coarse", "2", "--n-fine", "8"], "need n_fine >= 0 and n_coarse >= 2"),
    (["--lr-final", "0"], "must be > 0"),
    (["--precrop-frac", "1.5"], "--precrop-frac 1.5: must be in (0, 1]"),
    (["--scale", "2"], "--scale 2: must be in (0, 1]"),
    (["--warmstart-steps", "3", "--warmstart-points", "0"], "--warmstart-points 0: must be at least 1"),
    (["--checkpoint-every", "0"], "--checkpoint-every 0: must be > 0"),
    (["--lr", "inf"], "--lr inf: not a finite number"),
    (["--lr", "1e300"], "--lr 1e+300: must be > 0 and within float32's range"),
    (["--threads", "0"], "--threads 0: must be between 1 and this machine's"),
    (["--threads", "999999999"], "--threads 999999999: must be between 1 and this machine's"),
])
def test_cli_refuses_settings_it_cannot_train_with(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main(["train", "--scene", "object", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_tiny_precrop_keeps_at_least_the_centre_pixels(tiny_scene):
    scene, _ = tiny_scene
    tr = Trainer(scene, _cfg(precrop_frac=0.01), TINY)
    assert len(tr._crop_idx) == 4 * len(scene.split("train"))
    tr.photometric_step()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_takes_effect_on_glibc():
    code = "from nerf_eval.memory import keep_freed_memory as k; print(k(), k())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]
