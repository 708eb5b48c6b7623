"""Paired latency (nerf_eval.measure): the arithmetic on a fake clock, the round order, warm-up, the
minimum time, garbage collection, and a few real timings of callables with a known ratio."""

from __future__ import annotations

import gc
import json
import math
import statistics
import time

import pytest
import torch

from nerf_eval.measure import PairedProtocol, summarize, time_pair, time_paired, time_render_pair, time_renders
from nerf_eval.measure.latency import REFERENCE, pair_ratio, quantile
from nerf_eval.measure.render_latency import render_batch
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import Rays, RenderSettings, render_chunked

MS = 1_000_000  # ns


class FakeClock:
    """A clock that only moves when a fake callable says how long it took."""

    def __init__(self) -> None:
        self.now = 0
        self.log: list[str] = []

    def __call__(self) -> int:
        return self.now

    def callable(self, name: str, durations_ms: list[float]):
        """Each call takes the next of `durations_ms` (warm-up calls included) and is logged."""
        queue = list(durations_ms)

        def run() -> None:
            self.log.append(name)
            self.now += round(queue.pop(0) * MS)
        return run


def test_speedup_is_the_median_of_per_round_ratios_and_spread_the_iqr():
    clock = FakeClock()
    # warm-up calls take 1000 ms and must not count; then 4 rounds with ratios 4, 1, 3, 2
    ref = clock.callable("ref", [1000, 40, 10, 30, 20])
    cand = clock.callable("cand", [1000, 10, 10, 10, 10])
    r = time_pair(ref, cand, PairedProtocol(rounds=4, warmup=1), clock, name="cand")
    assert r.name == "cand" and r.rounds == 4
    assert r.ratios == (4.0, 1.0, 3.0, 2.0)
    assert r.times_s == (0.01,) * 4 and r.reference_times_s == (0.04, 0.01, 0.03, 0.02)
    assert r.speedup == 2.5  # median of 1, 2, 3, 4
    assert (r.ratio_q1, r.ratio_q3) == (1.75, 3.25)  # linear interpolation, as numpy's default
    assert r.spread == 1.5 and (r.ratio_min, r.ratio_max) == (1.0, 4.0)
    assert r.latency_s == 0.01 and r.reference_latency_s == 0.025
    assert r.summary() == "2.50x (IQR 1.75-3.25, range 1.00-4.00, 4 rounds)"


def test_median_of_ratios_is_not_the_ratio_of_medians():
    """A burst that slows one side of one round moves the ratio of that round only."""
    clock = FakeClock()
    ref = clock.callable("ref", [0, 20, 20, 200, 20, 20])  # round 3: a burst on the reference only
    cand = clock.callable("cand", [0, 10, 10, 10, 10, 10])
    r = time_pair(ref, cand, PairedProtocol(rounds=5), clock)
    assert r.speedup == 2.0 and r.spread == 0.0 and r.ratio_max == 20.0


def test_alternate_order_rotates_and_warms_up_every_callable_first():
    clock = FakeClock()
    ref = clock.callable("R", [1] * 5)
    a = clock.callable("A", [1] * 5)
    r = time_pair(ref, a, PairedProtocol(rounds=4, warmup=1, order="alternate"), clock, name="a")
    assert clock.log == ["R", "A", "R", "A", "A", "R", "R", "A", "A", "R"]
    assert r.before_reference == (False, True, False, True)


def test_alternate_order_with_two_candidates_gives_each_callable_each_position():
    clock = FakeClock()
    fns = {n: clock.callable(n, [1] * 7) for n in "RAB"}
    time_paired(fns["R"], {"A": fns["A"], "B": fns["B"]}, PairedProtocol(rounds=6, warmup=0, order="alternate"),
                clock)
    rounds = [clock.log[i:i + 3] for i in range(0, 18, 3)]
    for pos in range(3):
        assert sorted(r[pos] for r in rounds) == ["A", "A", "B", "B", "R", "R"]


def test_shuffled_order_is_seeded_and_each_round_runs_everything_once():
    def log(seed: int) -> list[str]:
        clock = FakeClock()
        fns = {n: clock.callable(n, [1] * 40) for n in "RAB"}
        time_paired(fns["R"], {"A": fns["A"], "B": fns["B"]},
                    PairedProtocol(rounds=40, warmup=0, order="shuffle", seed=seed), clock)
        return clock.log

    first, again, other = log(0), log(0), log(1)
    assert first == again and first != other
    rounds = [first[i:i + 3] for i in range(0, len(first), 3)]
    assert all(sorted(r) == ["A", "B", "R"] for r in rounds)
    assert {r[0] for r in rounds} == {"A", "B", "R"}  # nobody always goes first


def test_adjacent_pairing_gives_each_candidate_its_own_neighbouring_reference_call():
    clock = FakeClock()
    ref = clock.callable("R", [0] + [10, 20, 30, 40])  # four reference calls: two rounds, two candidates
    a = clock.callable("A", [0, 5, 10])
    b = clock.callable("B", [0, 10, 40])
    out = time_paired(ref, {"A": a, "B": b}, PairedProtocol(rounds=2, warmup=1, order="alternate", pairing="adjacent"),
                      clock)
    # warm-up R A B; round 0: (R A)(B R); round 1, candidates rotated, each pair's order flipped: (R B)(A R)
    assert clock.log == ["R", "A", "B", "R", "A", "B", "R", "R", "B", "A", "R"]
    assert out["A"].reference_times_s == (0.01, 0.04) and out["A"].ratios == (2.0, 4.0)
    assert out["B"].reference_times_s == (0.02, 0.03) and out["B"].ratios == (2.0, 0.75)
    assert out["A"].before_reference == (False, True) and out["B"].before_reference == (True, False)


def test_candidates_share_the_reference_call_of_each_round():
    clock = FakeClock()
    ref = clock.callable("R", [0, 30, 60, 90])
    fast = clock.callable("fast", [0, 10, 20, 30])
    slow = clock.callable("slow", [0, 30, 60, 90])
    out = time_paired(ref, {"fast": fast, "slow": slow}, PairedProtocol(rounds=3), clock)
    assert list(out) == ["fast", "slow"]
    assert out["fast"].reference_times_s == out["slow"].reference_times_s == (0.03, 0.06, 0.09)
    assert out["fast"].ratios == (3.0, 3.0, 3.0) and out["slow"].speedup == 1.0


def test_min_time_adds_rounds_until_spent_and_max_rounds_caps_them():
    clock = FakeClock()
    r = time_pair(clock.callable("R", [10] * 100), clock.callable("A", [10] * 100),
                  PairedProtocol(rounds=2, warmup=0, min_time_s=0.1), clock)
    assert r.rounds == 5  # 20 ms a round: 0.1 s after 5 rounds
    clock = FakeClock()
    r = time_pair(clock.callable("R", [10] * 100), clock.callable("A", [10] * 100),
                  PairedProtocol(rounds=2, warmup=0, min_time_s=10.0, max_rounds=7), clock)
    assert r.rounds == 7


@pytest.mark.parametrize("collect", [True, False])
def test_garbage_collector_is_paused_within_rounds_and_restored(collect):
    seen = []
    r = time_pair(lambda: seen.append(gc.isenabled()), lambda: seen.append(gc.isenabled()),
                  PairedProtocol(rounds=3, warmup=0, gc=collect))
    assert r.rounds == 3 and seen == [not collect] * 6
    assert gc.isenabled()


def test_a_collector_disabled_by_the_caller_stays_disabled():
    gc.disable()
    try:
        time_pair(lambda: None, lambda: None, PairedProtocol(rounds=2))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_is_restored_when_a_callable_raises():
    def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        time_pair(lambda: None, boom, PairedProtocol(rounds=2, warmup=0))
    assert gc.isenabled()


def test_summarize_and_helpers():
    r = summarize("x", [0.5], [1.0])
    assert (r.speedup, r.spread, r.ratio_q1, r.ratio_q3) == (2.0, 0.0, 2.0, 2.0)
    assert pair_ratio(1.0, 0.0) == math.inf and pair_ratio(0.0, 0.0) == 1.0
    assert quantile([1.0, 2.0, 3.0], 0.5) == statistics.median([1.0, 2.0, 3.0])
    assert quantile([1.0, math.inf], 0.0) == 1.0
    with pytest.raises(ValueError, match="same positive number"):
        summarize("x", [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same positive number"):
        summarize("x", [], [])
    d = summarize("x", [1.0, 2.0], [2.0, 2.0], [False, True]).to_dict()
    assert json.loads(json.dumps(d))["ratios"] == [2.0, 1.0] and d["rounds"] == 2 and d["latency_s"] == 1.5


@pytest.mark.parametrize("kw,message", [
    ({"rounds": 0}, "rounds"), ({"warmup": -1}, "warmup"), ({"min_time_s": -1.0}, "min_time_s"),
    ({"min_time_s": math.nan}, "min_time_s"), ({"rounds": 5, "max_rounds": 4}, "max_rounds"),
    ({"order": "random"}, "order"), ({"pairing": "nearest"}, "pairing")])
def test_bad_protocols(kw, message):
    with pytest.raises(ValueError, match=message):
        PairedProtocol(**kw)


def test_bad_candidates():
    with pytest.raises(ValueError, match="at least one candidate"):
        time_paired(lambda: None, {})
    with pytest.raises(ValueError, match="reserved"):
        time_paired(lambda: None, {REFERENCE: lambda: None})


def test_sleeps_with_a_known_ratio_read_it():
    """Real clock: a call sleeping 20 ms against one sleeping 10 ms reads about 2x. A sleep never returns
    early but overshoots by its wake-up latency, by a few ms on a loaded machine and on either side of a
    pair, so the bounds only say the real clock is read in the right order; the arithmetic is pinned on a
    fake clock above."""
    r = time_pair(lambda: time.sleep(0.02), lambda: time.sleep(0.01), PairedProtocol(rounds=7))
    assert 1.2 < r.speedup < 3.0, r.summary()
    assert all(t >= 0.01 for t in r.times_s) and all(t >= 0.02 for t in r.reference_times_s)


def test_busy_loops_with_a_known_ratio_read_it_on_a_cpu_time_clock():
    """Busy loops of 3n and n iterations read about 3x, and a loop against itself 1x. Timed on the
    thread's CPU-time clock (an injected clock), which other processes' load does not advance; on the
    wall clock a shared 2-core machine preempts calls of a few ms too often for a tight unit test."""
    def spin(n: int):
        def run() -> None:
            for _ in range(n):
                pass
        return run

    out = time_paired(spin(300_000), {"third": spin(100_000), "same": spin(300_000)},
                      PairedProtocol(rounds=11), clock=time.thread_time_ns)
    assert 2.2 < out["third"].speedup < 3.8, out["third"].summary()
    assert 0.8 < out["same"].speedup < 1.25, out["same"].summary()


def test_render_helper_times_model_pairs_on_the_same_rays():
    config = NeRFConfig(depth=2, width=16, skips=(), multires=2, multires_views=1, view_width=8)
    pair, other = ModelPair.create(config, seed=0).eval(), ModelPair.create(config, seed=1).eval()
    g = torch.Generator().manual_seed(0)
    rays = Rays.from_od(torch.zeros(32, 3), torch.randn(32, 3, generator=g), 2.0, 6.0)
    settings = RenderSettings(n_coarse=4, n_fine=4, chunk=16)
    assert torch.equal(render_batch(pair, rays, settings)()["rgb"], render_chunked(pair, rays, settings)["rgb"])
    out = time_renders(pair, {"fp32": pair, "other": other}, rays, settings, PairedProtocol(rounds=3))
    assert list(out) == ["fp32", "other"] and all(r.rounds == 3 and min(r.times_s) > 0 for r in out.values())
    one = time_render_pair(pair, other, rays, settings, PairedProtocol(rounds=2), name="other")
    assert one.name == "other" and one.rounds == 2


def test_render_helpers_time_on_the_threads_asked_and_restore_torchs_setting(monkeypatch):
    import nerf_eval.measure.render_latency as render_latency

    config = NeRFConfig(depth=2, width=16, skips=(), multires=2, multires_views=1, view_width=8)
    pair = ModelPair.create(config, seed=0).eval()
    rays = Rays.from_od(torch.zeros(8, 3), torch.nn.functional.normalize(torch.ones(8, 3), dim=-1), 2.0, 6.0)
    settings = RenderSettings(n_coarse=4, n_fine=4, chunk=16)
    seen = []
    real = render_latency.render_chunked
    monkeypatch.setattr(render_latency, "render_chunked",
                        lambda *a: seen.append(torch.get_num_threads()) or real(*a))
    before = torch.get_num_threads()
    timing = time_render_pair(pair, pair, rays, settings, PairedProtocol(rounds=2, warmup=0), threads=1)
    render_batch(pair, rays, settings, threads=1)()
    assert seen == [1] * 5 and torch.get_num_threads() == before and timing.threads == 1
    seen.clear()
    render_batch(pair, rays, settings)()  # 0: as torch is set
    assert seen == [before]


def test_report_rows_record_the_paired_speedup_and_its_spread():
    """`nerf-eval report`'s rows: latency timed interleaved with fp32 (fp32's row: against itself)."""
    from nerf_eval.experiment import run_variants
    from nerf_eval.measure.record import Record
    from nerf_eval.scenes.procedural import make_scene

    scene, _ = make_scene("object", size=8)
    config = NeRFConfig(depth=2, width=16, skips=(), multires=2, multires_views=1, view_width=8)
    pair = ModelPair.create(config, seed=0).eval()
    settings = RenderSettings(n_coarse=4, n_fine=4, chunk=64)
    views = scene.split("test")[:1]
    rows, _ = run_variants(pair, scene, ["bf16"], views, scene.sample_rays(64, "train", 0), settings,
                           latency_rays=scene.rays(views[0])[:32], repeats=3, progress=False)
    assert [r.name for r in rows] == ["fp32", "bf16"]
    for r in rows:
        assert r.error is None and r.latency_rounds == 3
        assert r.speedup > 0 and r.speedup_spread >= 0
        assert r.latency_s > 0 and r.reference_latency_s > 0  # fp32's median in the rounds paired with the row
    back = Record.from_dict(json.loads(json.dumps(rows[1].to_dict())))
    assert back.speedup == rows[1].speedup and back.latency_rounds == 3
