"""What `pytest benchmarks/` selects by default: every compressor on `object` (a sweep at its headline
point), the headline set elsewhere, the accelerators' compositions on the targets their marks name, and
everything named when --nerf-compressors is given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def collected(*args: str, test: str = "test_compressor") -> set[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return {line.split("[", 1)[1].rstrip("]") for line in out.stdout.splitlines() if f"::{test}[" in line}


def test_default_selection_runs_sweeps_at_their_headline_point_and_mixed_on_object_only():
    ids = collected()
    assert {"object-prune-activation:0.3", "object-mixed:40", "object-int4-weight", "object-prune-random:0.3",
            "forward-prune-activation-obs:0.3", "lego-int8-ptq-both"} <= ids
    assert not ids & {"object-prune-activation:0.15", "object-prune-activation:0.85", "forward-mixed:40",
                      "lego-int8-dynamic"}


def test_named_compressors_run_on_every_target():
    ids = collected("--nerf-compressors=prune-activation:*")
    assert {f"{t}-prune-activation:{r}" for t in ("object", "forward", "lego") for r in (0.15, 0.3, 0.5, 0.85)} <= ids


def test_accelerator_compositions_run_on_their_marked_targets_and_when_named():
    flower = "samples:32:coarse=32+occupancy+coarse-grid"
    assert collected(test="test_accelerated") == {
        "object-samples+occupancy", "object-occupancy+int8-ptq-both", "object-samples+occupancy+int8-ptq-both",
        "object-samples+occupancy+coarse-grid", "object-samples+occupancy+coarse-grid+int8-ptq-both",
        "forward-samples+occupancy+coarse-grid", "forward-samples+occupancy+coarse-grid+int8-ptq-both",
        f"flower-{flower}", f"flower-{flower}+int8-ptq-both"}
    named = collected("--nerf-compressors=fp32,samples+occupancy,occ*", test="test_accelerated")
    assert {"forward-samples+occupancy", "flower-occupancy+int8-ptq-both"} <= named
    assert not any(n.endswith("-samples+occupancy+int8-ptq-both") for n in named)
    assert not collected("--nerf-compressors=int8-ptq-both", test="test_accelerated")


def test_known_failures_name_shipped_targets_and_compressors_the_default_run_selects():
    check = ("import sys; sys.path.insert(0, 'benchmarks'); import conftest as c; "
             "bad = [(t, n) for t, names in c.KNOWN_FAILURES.items() for n in names "
             "if t not in c.SHIPPED or n not in c.HEADLINE]; "
             "t = c.pytest_nerfcompress.Target('forward', c.ROOT / 'checkpoints/forward/checkpoint.pt', name='forward'); "
             "u = c.pytest_nerfcompress.Target('forward', '/elsewhere/checkpoint.pt', name='forward'); "
             "assert not bad and c.known_failures(t) and not c.known_failures(u), bad")
    subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=True)
