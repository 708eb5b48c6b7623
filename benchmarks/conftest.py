"""Benchmark targets: every built-in scene, the synthetic lego scene and the real flower capture, each once
it ships a finished checkpoint.

A checkpoint counts as shipped once its model card exists (training writes checkpoint.pt from the first
minutes on; the card is written when training is done and measured). Targets without one skip with a
reason. Passing --nerf-scene or --nerf-checkpoint measures that one target instead.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from pathlib import Path

import pytest
import torch

import pytest_nerfcompress
from nerf_eval.compress import REGISTRY, CompressorSpec
from nerf_eval.errors import CompressorError
from pytest_nerfcompress.fixtures import nerf_session
from pytest_nerfcompress.registry import Choice

ROOT = Path(__file__).resolve().parents[1]
# Benchmarks use every core (the root conftest keeps unit tests at one thread); NERF_BENCH_THREADS overrides.
torch.set_num_threads(int(os.environ.get("NERF_BENCH_THREADS", os.cpu_count() or 1)))
SHIPPED = {  # target name: (scene spec, run directory, evaluation scale relative to --nerf-scale)
    "object": ("object", "checkpoints/object", 1.0),
    "forward": ("forward", "checkpoints/forward", 1.0),
    "lego": ("../shared/data/lego_200", "checkpoints/lego", 0.5),  # 200x200: the pixel count of the others
    # the real LLFF capture at images_8 (504x378); a quarter of --nerf-scale keeps about the pixel count of the others
    "flower": ("../shared/data/nerf_llff_data/flower", "checkpoints/flower", 0.25),
}
# Without --nerf-compressors, `object` runs every registered compressor and the other targets this
# headline set (the reference report's int8-both and pruned-30% variants, and the pruning that beats
# it), to keep the default run of `pytest benchmarks/` short on 2 cores; --nerf-compressors applies to
# every target. A compressor registered with a sweep of parameters (prune-activation at 0.15/0.3/0.5/
# 0.85) runs at its point in this set only (the sweep is `nerf-eval report`'s job, see
# reports/object-pruning-table), and mixed:40 (about 80 s of search per target) runs on `object` only.
HEADLINE = ("fp32", "int8-ptq-both", "prune-activation:0.3", "prune-activation-obs:0.3")
# Gate failures measured on the shipped checkpoints (results, not bugs in the suite), declared per target
# name so that `pytest benchmarks/` stays green while they fail as measured: they run as strict xfail,
# the reason shown gets the figure measured in that run, and one that starts to pass fails the run.
# They apply to a shipped checkpoint only (also when --nerf-scene names its scene).
PRUNE_REASON = "the reference report's pruning method, post-training, misses its 1 dB gate"
KNOWN_FAILURES = {
    "object": {"prune-activation:0.3": PRUNE_REASON},
    "forward": {"prune-activation:0.3": PRUNE_REASON,
                "prune-activation-obs:0.3": "loses more than its 1 dB gate on forward's two test views"},
    "lego": {"prune-activation:0.3": PRUNE_REASON},
    "flower": {"prune-activation:0.3": PRUNE_REASON},
}


def known_failures(target: pytest_nerfcompress.Target) -> dict[str, str]:
    """The declared failures of `target` if it measures the shipped checkpoint of its name."""
    shipped = SHIPPED.get(target.name)
    if shipped is None or Path(target.checkpoint).resolve() != (ROOT / shipped[1] / "checkpoint.pt").resolve():
        return {}
    return KNOWN_FAILURES.get(target.name, {})


def base_of(name: str) -> str:
    """The registered base name of a one-stage compressor name (a sweep's points share it); a composition,
    or a name only a conftest registers, is its own key."""
    try:
        spec = REGISTRY.parse(name)
    except CompressorError:
        return name
    return spec.base if isinstance(spec, CompressorSpec) else name


def is_composition(name: str) -> bool:
    """Whether `name` joins stages (or is no registered name): such names run on `object` only, unless a
    `nerf_targets` mark names their targets."""
    try:
        return not isinstance(REGISTRY.parse(name), CompressorSpec)
    except CompressorError:
        return True


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nerf_targets(*names): the shipped targets a test's own compressor name "
                                       "runs on by default (see pytest_collection_modifyitems)")


def runs_on(item: pytest.Item, target: str, choice: str) -> bool:
    """Whether a name a test's own parametrize gives runs on `target` by default: the targets of its
    `nerf_targets` mark, else every target for one stage and `object` for a composition."""
    mark = item.get_closest_marker("nerf_targets")
    if mark is not None:
        return target in mark.args
    return target == "object" or not is_composition(choice)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "shipped_target" in metafunc.fixturenames:
        names = ["cli"] if nerf_session(metafunc.config).explicit_target() else list(SHIPPED)
        metafunc.parametrize("shipped_target", names, scope="session", indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect non-headline compressors on the targets other than `object`, and the off-headline points
    of a parameter sweep on `object` (see HEADLINE). Of the names test_compressors.py gives itself, the
    compositions (ACCELERATED) run on the targets their `nerf_targets` mark names and the one-stage variants
    (VARIANTS) on every target (`runs_on`); with --nerf-compressors, only those it names."""
    session = nerf_session(config)
    patterns, explicit = session.options.compressors, session.explicit_target()
    headline_of = {base_of(name): name for name in HEADLINE}
    keep, drop = [], []
    for item in items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        target, choice = params.get("shipped_target"), params.get("nerf_compressor")
        if choice is not None and not isinstance(choice, Choice):  # a name the test's own parametrize gives
            if patterns:
                extra = not any(fnmatch.fnmatchcase(choice, p) for p in patterns)
            else:
                extra = not explicit and target is not None and not runs_on(item, target, choice)
        elif choice is None or explicit or patterns:
            extra = False
        elif target not in (None, "object"):
            extra = choice.name not in HEADLINE
        else:  # a sweep (prune-activation at 0.15/0.3/0.5/0.85) runs at its headline point only
            extra = headline_of.get(base_of(choice.name), choice.name) != choice.name
        (drop if extra else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def shipped_target(request: pytest.FixtureRequest, nerf_options) -> pytest_nerfcompress.Target:
    if request.param == "cli":
        target = pytest_nerfcompress.Target.from_options(nerf_options)
        return dataclasses.replace(target, known_failures=known_failures(target))
    scene, run_dir, scale = SHIPPED[request.param]
    run = ROOT / run_dir
    if not (run / "model_card.json").exists():
        pytest.skip(f"{request.param}: no finished checkpoint ({run_dir}/model_card.json missing; "
                    f"train it with `nerf-eval train --scene {scene} --out {run_dir}`)")
    if scene.startswith("../") and not (ROOT / scene).exists():
        pytest.skip(f"{request.param}: scene data {scene} not found")
    target = pytest_nerfcompress.Target(scene, run / "checkpoint.pt", name=request.param,
                                        scale=nerf_options.scale * scale)
    return dataclasses.replace(target, known_failures=known_failures(target))


@pytest.fixture(scope="session")
def nerf_target(shipped_target: pytest_nerfcompress.Target) -> pytest_nerfcompress.Target:
    """The plugin's target fixture, overridden to run once per shipped scene."""
    return shipped_target
