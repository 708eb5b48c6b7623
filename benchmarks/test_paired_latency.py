"""Paired latency is a trustworthy speed-up: fp32 against itself reads 1x, and two models of identical
architecture read the same speed-up, in one run, on a shared machine (issue 18).

On the shipped `object` checkpoint, fp32 (the reference) is timed interleaved with three candidates on
one fixed ray batch (nerf_eval.measure's paired protocol): fp32 itself, and two 30% random prunings with
different seeds, whose kept widths, and so whose work, are identical. Every figure asserted is a median
of per-round ratios, never a wall-clock time: the claim is that load from other processes cancels out
of the ratios. Quick: a 48-ray batch at the full 64+128 samples, at least 9 rounds and 18 s of timing
(about 30 s in all on 2 loaded cores).

Timed on one torch thread (NERF_PAIRED_THREADS overrides): with intra-op threads on a loaded machine,
every parallel region waits for its slowest thread, so one preempted thread stalls the whole call. That
is noise of each single call, which pairing cannot cancel (it cancels load common to both calls of a
pair). Measured on 2 AMD EPYC cores at load average 5-10 (other test runs and a training job): with 2
threads, 7 of 15 runs fell outside the bounds below (fp32 against itself 0.73x-1.26x, identical
architectures up to 44% apart); with 1 thread, 13 of 13 runs inside (0.97x-1.04x, at most 8.4% apart).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import PairedProtocol, time_renders
from nerf_eval.render import RenderSettings
from nerf_eval.scenes.procedural import make_scene

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "checkpoints" / "object"
SAME_ARCHITECTURE = ("prune-random:0.3:seed=1", "prune-random:0.3:seed=2")
PROTOCOL = PairedProtocol(rounds=9, warmup=1, min_time_s=18.0, max_rounds=40)
LATENCY_RAYS = 48  # the plugin's batch is 128 rays; fewer keep this benchmark under a minute
SELF_BAND = (0.9, 1.1)  # fp32 against itself
SAME_TOLERANCE = 0.10  # two identical architectures: speed-ups within 10% of each other
THREADS = int(os.environ.get("NERF_PAIRED_THREADS", "1"))


def test_paired_speedups_of_fp32_against_itself_and_of_identical_architectures():
    if not (RUN / "model_card.json").exists():
        pytest.skip("object: no finished checkpoint (checkpoints/object/model_card.json missing)")
    import torch

    pair = load_checkpoint(RUN / "checkpoint.pt").eval()
    # The plugin's default evaluation scale (0.5) of `object`: rendered at 50x50 directly, a quarter of
    # the generation time of load_scene("object").rescaled(0.5), with the same cameras and rays.
    scene, _ = make_scene("object", size=50)
    rays = scene.sample_rays(LATENCY_RAYS, "test", seed=1)  # seeded test rays, as the plugin's batch
    calibration = scene.sample_rays(2048, "train", seed=0)
    settings = RenderSettings(white_bkgd=scene.white_bkgd)  # 64+128 samples
    pruned = {name: get_compressor(name).compress(pair, calibration) for name in SAME_ARCHITECTURE}
    shapes = [{f"{net}.{k}": tuple(v.shape) for net, module in m.networks().items()
               for k, v in module.state_dict().items()} for m in pruned.values()]
    assert shapes[0] == shapes[1], "the two prunings must have identical architectures"

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        out = time_renders(pair, {"fp32": pair, **pruned}, rays, settings, PROTOCOL)
    finally:
        torch.set_num_threads(threads)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\npaired latency on {machine_summary()}; timed on {THREADS} thread(s), load average {load:.2f}; "
          f"{LATENCY_RAYS} rays at {settings.n_coarse}+{settings.n_fine} samples, fp32 reference")
    for name, t in out.items():
        print(f"  {name:<24} speed-up {t.summary()}; median {1e3 * t.latency_s:.0f} ms "
              f"(fp32 {1e3 * t.reference_latency_s:.0f} ms in the same rounds)")
    a, b = (out[n].speedup for n in SAME_ARCHITECTURE)
    apart = max(a, b) / min(a, b) - 1.0
    print(f"  identical architectures: {a:.3f}x and {b:.3f}x, {100 * apart:.1f}% apart")

    lo, hi = SELF_BAND
    assert lo <= out["fp32"].speedup <= hi, f"fp32 against itself: {out['fp32'].summary()}"
    assert apart <= SAME_TOLERANCE, (f"identical architectures read {out[SAME_ARCHITECTURE[0]].summary()} and "
                                     f"{out[SAME_ARCHITECTURE[1]].summary()}")
    assert a > 1.0 and b > 1.0, "a 30% pruned model should be faster than fp32"
