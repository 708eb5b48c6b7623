"""Interrupts (issue 20): SIGINT/SIGTERM at any moment leave every destination holding its complete old
content or the complete new one, and no temporary behind; Ctrl-C is one line and exit code 130.

The critical sections of `nerf_eval.atomic` are interrupted deterministically in-process (a
KeyboardInterrupt injected at each step of a write or a directory swap); the real commands are then
interrupted from outside, at seeded moments, in subprocesses.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nerf_eval import atomic
from nerf_eval.atomic import atomic_directory_swap, atomic_write_bytes
from nerf_eval.checkpoint import save_checkpoint
from nerf_eval.cli import main
from nerf_eval.interrupt import deferred_signals, interruptible, stop_point, stop_requests
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.report import atomic_directory
from nerf_eval.scenes.blender import write_blender
from nerf_eval.scenes.procedural import make_scene

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)
MAIN_THREAD = threading.current_thread() is threading.main_thread()


def hidden(directory: Path) -> list[str]:
    """Names of temporaries (the atomic helpers' are hidden: `.name.XXXX`)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


class Interrupt:
    """Wrap a function so that its `at`-th call (1-based) raises KeyboardInterrupt instead of running."""

    def __init__(self, fn, at: int) -> None:
        self.fn, self.at, self.calls = fn, at, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.fn(*args, **kwargs)


def old_report(out: Path) -> None:
    out.mkdir()
    (out / "results.md").write_text("old report")
    (out / "extra.txt").write_text("old extra")


def is_old_report(out: Path) -> bool:
    return (sorted(p.name for p in out.iterdir()) == ["extra.txt", "results.md"]
            and (out / "results.md").read_text() == "old report")


# --- in-process: every step of the write and the swap ---------------------------------------------

@pytest.mark.parametrize("at", [1, 2])
def test_directory_swap_interrupted_at_each_rename_keeps_the_old_directory(tmp_path, monkeypatch, at):
    out = tmp_path / "rep"
    old_report(out)
    monkeypatch.setattr(atomic.os, "rename", Interrupt(os.rename, at))  # 1: old aside, 2: new in
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(out, overwrite=True) as tmp:
            (tmp / "results.md").write_text("new report")
    assert is_old_report(out)
    assert hidden(tmp_path) == []


def test_directory_swap_interrupted_while_writing_keeps_the_old_directory(tmp_path):
    out = tmp_path / "rep"
    old_report(out)
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(out, overwrite=True) as tmp:
            (tmp / "results.md").write_text("half a rep")
            raise KeyboardInterrupt
    assert is_old_report(out)
    assert hidden(tmp_path) == []


def test_directory_swap_replaces_the_old_directory_whole(tmp_path):
    out = tmp_path / "rep"
    old_report(out)
    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "results.md").write_text("new report")
    assert sorted(p.name for p in out.iterdir()) == ["results.md"] and (out / "results.md").read_text() == "new report"
    assert oct(out.stat().st_mode & 0o777) == oct(0o755)
    assert hidden(tmp_path) == []


def test_directory_swap_cleans_up_when_the_temporary_cannot_be_made_ready(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "chmod", Interrupt(Path.chmod, 1))
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory_swap(tmp_path / "rep"):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("step", ["fsync", "chmod", "replace"])
def test_file_write_interrupted_at_each_step_keeps_the_old_file(tmp_path, monkeypatch, step):
    path = tmp_path / "c.pt"
    path.write_bytes(b"old bytes")
    monkeypatch.setattr(atomic.os, step, Interrupt(getattr(os, step), 1))
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(b"new bytes", path)
    assert path.read_bytes() == b"old bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


@pytest.mark.skipif(not MAIN_THREAD or not hasattr(signal, "pthread_sigmask"), reason="needs the main thread")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_wait_for_the_critical_section(signum, monkeypatch):
    monkeypatch.setattr(signal, "SIGINT_HANDLER_FOR_TEST", signal.signal(signal.SIGINT, signal.default_int_handler),
                        raising=False)
    events = []

    @interruptible("test")
    def command() -> int:
        with deferred_signals():
            os.kill(os.getpid(), signum)
            time.sleep(0.05)
            events.append("section finished")
        events.append("not reached")  # the end of the section is a stop point: the held-back signal acts there
        return 0

    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert command() == 130
    finally:
        signal.signal(signal.SIGINT, signal.SIGINT_HANDLER_FOR_TEST)
    assert events == ["section finished"]
    assert signal.getsignal(signal.SIGTERM) is previous  # restored


@pytest.mark.skipif(not MAIN_THREAD, reason="signal handlers need the main thread")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_acts_at_the_next_stop_point_not_in_the_middle_of_an_import(signum, tmp_path, monkeypatch):
    """A module that receives the signal while it is being imported still finishes initialising (an
    exception raised there would leave it half made); the stop point after the import raises."""
    name = f"signalled_during_import_{int(signum)}"
    (tmp_path / f"{name}.py").write_text(
        "import os, signal\n"
        f"os.kill(os.getpid(), {int(signum)})\n"
        "total = sum(range(100000))  # bytecodes after the signal: the handler has run by now\n"
        "COMPLETE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    with pytest.raises(KeyboardInterrupt):
        with stop_requests(grace_s=0):
            module = importlib.import_module(name)
            assert module.COMPLETE
            stop_point()
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.skipif(not MAIN_THREAD, reason="signal handlers need the main thread")
def test_a_second_signal_acts_at_once_and_an_ignored_request_after_its_grace():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with stop_requests(grace_s=0):
            signal.raise_signal(signal.SIGINT)
            reached.append("after the first")
            signal.raise_signal(signal.SIGTERM)
            reached.append("after the second")
    assert reached == ["after the first"]
    with pytest.raises(KeyboardInterrupt):
        with stop_requests(grace_s=0.1):
            signal.raise_signal(signal.SIGTERM)
            reached.append("no stop point here")
            for _ in range(200):  # a loop without stop points: the grace timer raises within ~0.1 s
                time.sleep(0.05)
            reached.append("not reached")
    assert reached == ["after the first", "no stop point here"]
    stop_point()  # nothing is left pending


@pytest.mark.skipif(not MAIN_THREAD, reason="signal handlers need the main thread")
def test_the_grace_timer_waits_for_a_critical_section_to_end():
    events = []
    with pytest.raises(KeyboardInterrupt):
        with stop_requests(grace_s=0.05):
            signal.raise_signal(signal.SIGTERM)
            with deferred_signals():
                for _ in range(10):  # the timer fires in here; raising would cut the section short
                    time.sleep(0.05)
                events.append("section finished")
            events.append("not reached")
    assert events == ["section finished"]


@pytest.mark.skipif(not MAIN_THREAD, reason="signal handlers need the main thread")
def test_a_request_pending_when_an_inner_scope_ends_keeps_its_grace_in_the_outer_one():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with stop_requests(grace_s=0.1):
            with stop_requests(grace_s=0.1):
                signal.raise_signal(signal.SIGINT)
            reached.append("inner scope ended")
            for _ in range(200):  # no stop point: only the grace timer can end this loop
                time.sleep(0.05)
            reached.append("not reached")
    assert reached == ["inner scope ended"]


def test_stop_point_outside_any_request_scope_does_nothing():
    stop_point()


def test_interruptible_prints_one_line(capsys):
    @interruptible("compress")
    def command() -> int:
        raise KeyboardInterrupt

    assert command() == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nerf-eval: compress interrupted")


# --- the commands, interrupted from outside ----------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt")
    scene = write_blender(make_scene("object", size=8)[0], root / "scene")
    ckpt = save_checkpoint(root / "tiny.pt", ModelPair.create(TINY, seed=1))
    ref = root / "reference.pt"  # compression is deterministic: the only possible new content
    assert main(["compress", "--checkpoint", str(ckpt), "--scene", str(scene), "--compressor", "bf16",
                 "--out", str(ref), "--calibration-rays", "64"]) == 0
    return root, ckpt, scene, ref.read_bytes()


def command(kind: str, ckpt: Path, scene: Path, dest: Path) -> list[str]:
    common = ["--checkpoint", str(ckpt), "--scene", str(scene)]
    if kind == "compress":
        return ["compress", *common, "--compressor", "bf16", "--calibration-rays", "64", "--out", str(dest), "--force"]
    if kind == "report":
        return ["report", *common, "--compressors", "bf16", "--calibration-rays", "32", "--latency-rays", "16",
                "--repeats", "1", "--views", "0", "--out", str(dest), "--force"]
    return ["evaluate", *common, "--views", "0", "--n-coarse", "8", "--n-fine", "8", "--no-flip", "--json", str(dest),
            "--force"]


# Importing the package imports torch (nerf_eval/__init__.py), a couple of seconds before any nerf-eval
# code runs; the child says when that is done, and the seeded moments are counted from there.
BOOT = ("import sys; import nerf_eval.cli as cli; print('READY', file=sys.stderr, flush=True); "
        "sys.exit(cli.main(sys.argv[1:]))")


def start(argv: list[str]) -> subprocess.Popen:
    def child_signals() -> None:  # Ctrl-C works in the child even if this test run ignores SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    env = dict(os.environ, PYTHONWARNINGS="error::RuntimeWarning")
    return subprocess.Popen([sys.executable, "-c", BOOT, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=child_signals, env=env)


def check_destination(kind: str, dest: Path, new_bytes: bytes) -> str:
    """'old' or 'new'; fails when the destination holds anything else."""
    if kind == "compress":
        data = dest.read_bytes()
        assert data in (b"old model", new_bytes)
        return "old" if data == b"old model" else "new"
    if kind == "evaluate":
        text = dest.read_text()
        if text == "old json":
            return "old"
        doc = json.loads(text)
        assert doc["views"] and doc["mean"]["psnr"] is not None and doc["settings"]["fine_network"] == "fine"
        return "new"
    if is_old_report(dest):
        return "old"
    assert sorted(p.name for p in dest.iterdir()) == ["grid.png", "results.json", "results.md", "tradeoff.png"]
    assert [r["name"] for r in json.loads((dest / "results.json").read_text())["results"]] == ["fp32", "bf16"]
    assert all((dest / n).stat().st_size > 0 for n in ("grid.png", "tradeoff.png", "results.md"))
    return "new"


@pytest.mark.slow
def test_interrupted_commands_leave_old_or_new_and_no_temporaries(files, tmp_path):
    """compress, report and evaluate, each once with SIGINT and once with SIGTERM at a seeded moment
    (all six at once, to keep the test short)."""
    root, ckpt, scene, new_compressed = files
    rng = random.Random("issue-20")  # seeded moments: the same ones on every run
    runs = []
    for kind in ("compress", "report", "evaluate"):
        for signum in (signal.SIGINT, signal.SIGTERM):
            where = tmp_path / f"{kind}-{signum.name}"
            where.mkdir()
            dest = where / {"compress": "c.pt", "report": "rep", "evaluate": "e.json"}[kind]
            if kind == "compress":
                dest.write_bytes(b"old model")
            elif kind == "report":
                old_report(dest)
            else:
                dest.write_text("old json")
            delay = rng.uniform(0.0, 4.0)  # the commands take 1-5 s here once the import is done
            runs.append({"kind": kind, "signum": signum, "where": where, "dest": dest, "delay": delay,
                         "proc": start(command(kind, ckpt, scene, dest))})
    for run in runs:
        assert run["proc"].stderr.readline().strip() == "READY"
        run["ready"] = time.monotonic()
    for run in sorted(runs, key=lambda r: r["ready"] + r["delay"]):
        time.sleep(max(0.0, run["ready"] + run["delay"] - time.monotonic()))
        if run["proc"].poll() is None:
            run["proc"].send_signal(run["signum"])
    outcomes = []
    for run in runs:
        proc, signum = run["proc"], run["signum"]
        _, err = proc.communicate(timeout=120)
        state = check_destination(run["kind"], run["dest"], new_compressed)
        context = (run["kind"], signum.name, round(run["delay"], 2), proc.returncode, err[-600:])
        assert hidden(run["where"]) == [], context
        assert "Traceback" not in err, context
        if proc.returncode == 0:
            assert state == "new", context
        elif proc.returncode == 130:  # interrupted inside the command or while it was being set up
            assert err.strip().splitlines()[-1].startswith("nerf-eval: "), context
        else:  # the signal's default action: SIGTERM before the command set its handler, or either signal
            # once the command had returned (the interpreter restores the defaults while it shuts down)
            assert proc.returncode == -signum, context
        outcomes.append((run["kind"], signum.name, proc.returncode, state))
    assert any(rc == 130 for _, _, rc, _ in outcomes), outcomes  # the moments do interrupt some commands


def test_files_into_a_directory_arrive_all_or_none(tmp_path):
    from nerf_eval.atomic import atomic_files_into

    out = tmp_path / "renders"
    out.mkdir()
    (out / "view_000.png").write_text("old")
    (out / "notes.txt").write_text("the user's")
    with pytest.raises(KeyboardInterrupt):
        with atomic_files_into(out) as tmp:
            (tmp / "view_000.png").write_text("new")
            raise KeyboardInterrupt
    assert (out / "view_000.png").read_text() == "old" and hidden(tmp_path) == []
    with atomic_files_into(out) as tmp:
        (tmp / "view_000.png").write_text("new")
        (tmp / "view_001.png").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "view_000.png", "view_001.png"]
    assert (out / "view_000.png").read_text() == "new" and (out / "notes.txt").read_text() == "the user's"
    assert hidden(tmp_path) == []
    with atomic_files_into(tmp_path / "fresh") as tmp:
        (tmp / "frame_000.png").write_text("x")
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["frame_000.png"]
