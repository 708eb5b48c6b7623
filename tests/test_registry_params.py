"""Compressors as self-describing units: declared parameters, one parse into a typed spec, canonical names
that print back unchanged, one registry (with installed packages' entry points) for the CLI and the plugin.

This module is also the proof that a parameterised compressor takes one file plus one registration: the
toy compressor below (one declared float parameter) is registered once, then used by name, with a
parameter, through `get_compressor`, `nerf-eval report` and the pytest plugin."""

from __future__ import annotations

import copy
import importlib.metadata
import json

import pytest
import torch

from nerf_eval.cli import main
from nerf_eval.compress import (REGISTRY, CompressorSpec, FunctionCompressor, Param, PipelineSpec, Registry,
                                available, get_compressor, parse_compressor, register)
from nerf_eval.compress.discovery import ENTRY_POINT_GROUP
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair
from pytest_nerfcompress.testing import TINY_CONFIG, tiny_ini, write_tiny_target

pytest_plugins = ["pytester"]


# ---------------------------------------------------------------- the toy compressor: one file, one registration

def blend_density(pair: ModelPair, strength: float) -> ModelPair:
    """A copy of `pair` whose fine network's density weights are scaled by 1 - strength."""
    fine = copy.deepcopy(pair.fine)
    with torch.no_grad():
        fine.alpha_linear.weight.mul_(1.0 - strength)
    return ModelPair(copy.deepcopy(pair.coarse), fine, pair.config, {**pair.meta, "toy_strength": strength})


@register("toy-blend", defaults=(), description="toy: scales the fine density weights",
          params=[Param("strength", float, 0.5, low=0.0, high=1.0, positional=True, help="blend strength")])
def toy_blend(spec: CompressorSpec) -> FunctionCompressor:
    return FunctionCompressor(str(spec), lambda pair, _cal: blend_density(pair, spec["strength"]))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_target(tmp_path_factory.mktemp("params"))


def report_rows(tiny, out, compressors: str) -> list[dict]:
    assert main(["report", "--checkpoint", str(tiny["checkpoint"]), "--scene", str(tiny["scene"]), "--compressors",
                 compressors, "--out", str(out), "--calibration-rays", "32", "--latency-rays", "16",
                 "--repeats", "1"]) == 0
    return json.loads((out / "results.json").read_text())["results"]


def test_a_parameterised_compressor_runs_by_name_through_get_compressor(tiny):
    comp = get_compressor("toy-blend:0.25")
    assert comp.name == "toy-blend:0.25" and get_compressor("toy-blend").name == "toy-blend"
    pair = ModelPair.create(TINY_CONFIG, seed=0)
    out = comp.compress(pair, None)
    assert out.meta["toy_strength"] == 0.25
    torch.testing.assert_close(out.fine.alpha_linear.weight, 0.75 * pair.fine.alpha_linear.weight)
    assert get_compressor("toy-blend:strength=.250").name == "toy-blend:0.25"  # parsed, printed canonically
    for bad, message in [("toy-blend:2", r"toy-blend:2: blend strength must be in \[0, 1\], got 2"),
                         ("toy-blend:much", "blend strength 'much' is not a number in"),
                         ("toy-blend:0.5:colour=red", r"unknown option 'colour=red'; parameters: STRENGTH$")]:
        with pytest.raises(CompressorError, match=message) as err:
            get_compressor(bad)
        assert "\n" not in str(err.value)


def test_a_parameterised_compressor_runs_in_nerf_eval_report(tiny, tmp_path):
    rows = report_rows(tiny, tmp_path / "report", "toy-blend:0.25")
    assert [r["name"] for r in rows] == ["fp32", "toy-blend:0.25"]
    assert not rows[1].get("error")


def test_a_parameterised_compressor_runs_in_the_plugin(pytester, tiny, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeini(tiny_ini(tiny))
    pytester.makepyfile(test_quality='''
        def test_quality(nerf_compressed, nerf_evaluator, nerf_gate):
            assert nerf_compressed.pair.meta["toy_strength"] == 0.25
            nerf_gate(nerf_evaluator(nerf_compressed, latency=False))
    ''')
    result = pytester.runpytest("-v", "--nerf-compressors=toy-blend:0.25")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_quality?toy-blend:0.25? PASSED*"])
    bad = pytester.runpytest("--nerf-compressors=toy-blend:2")
    bad.assert_outcomes(errors=1)
    bad.stdout.fnmatch_lines(["*nerfcompress: toy-blend:2: blend strength must be in [[]0, 1], got 2"])


# ---------------------------------------------------------------- parsing and canonical names

SHIPPED_NAMES = ["prune-activation:0.3", "prune-activation:0.3:global:round=1", "occupancy:128:threshold=0.003",
                 "int8-ptq-both", "int8-ptq-both:64", "mixed:40", "mixed", "int4-weight:8", "bf16:coarse",
                 "prune-random:0.5:round=1:seed=3", "prune-activation:0.5:round=1:repair=mean",
                 "prune-activation-obs:0:coarse=0.15", "prune-activation-obs:0.3+int8-ptq-both",
                 "prune-activation:0.5:round=1+int8-ptq-both:64", "prune-activation:0.3:views",
                 "prune-weight-out:0.85:global:round=1", "int8-ptq-fine:16+bf16:coarse", "occupancy:8+int8-ptq-both:64"]


@pytest.mark.parametrize("name", available() + SHIPPED_NAMES)
def test_canonical_names_round_trip_and_keep_todays_names(name):
    spec = parse_compressor(name)
    assert str(spec) == name and parse_compressor(str(spec)) == spec
    assert get_compressor(spec).name == name


def test_specs_are_typed_and_normalised():
    spec = parse_compressor("prune-activation:.30:round=1:global")
    assert isinstance(spec, CompressorSpec) and spec.base == "prune-activation"
    assert spec["ratio"] == 0.3 and spec["round"] == 1 and spec["scope"] == "global" and spec["repair"] == "none"
    assert str(spec) == "prune-activation:0.3:global:round=1"  # declaration order, shortest numbers
    assert parse_compressor("prune-activation-obs:0.3")["repair"] == "lsq"  # a per-name default
    assert str(parse_compressor("occupancy:res=6")) == "occupancy:6"
    chain = parse_compressor("pipeline:bf16:fine+int8-ptq-coarse")
    assert isinstance(chain, PipelineSpec) and str(chain) == "bf16:fine+int8-ptq-coarse"
    assert parse_compressor("pipeline:fp16") == parse_compressor("fp16")
    assert str(REGISTRY.spec("prune-activation-obs", ratio=0.15, coarse=0.5)) == "prune-activation-obs:0.15:coarse=0.5"


@pytest.mark.parametrize("name, message", [
    ("occupancy:64:jitter=-1", r"occupancy:64:jitter=-1: number of jittered points per cell must be in \[0, 64\]"),
    ("bf16:sideways", "unknown network to cast 'sideways'; choose from both, coarse, fine"),
    ("prune-activation:0.3:round=1:round=2", "round given twice"),
    ("occupancy:", "occupancy:: empty parameter; parameters: RES, threshold=X"),
    ("int8-dynamic:3", "int8-dynamic takes no parameter"),
    ("fp32\nbf16", r"'fp32\\nbf16': compressor names hold no line breaks"),
])
def test_malformed_names_are_one_line_errors_naming_the_parameter(name, message):
    with pytest.raises(CompressorError, match=message) as err:
        parse_compressor(name)
    assert "\n" not in str(err.value)


def test_parameter_declarations_are_checked_at_registration():
    reg = Registry()
    with pytest.raises(CompressorError, match="cannot be empty or contain"):
        reg.register("a:b", lambda spec: None)
    with pytest.raises(CompressorError, match="distinct"):
        reg.register("a", lambda spec: None, params=[Param("x"), Param("x")])
    with pytest.raises(CompressorError, match=r"a:2: x must be in \[0, 1\]"):
        reg.register("a", lambda spec: None, defaults=("2",), params=[Param("x", low=0, high=1, positional=True)])


def test_autocompress_reads_its_default_search_space_from_declarations():
    from nerf_eval.autocompress import SearchOptions

    options = SearchOptions()
    assert options.ratios == (0.0, 0.15, 0.3, 0.5) and options.mixed_budgets == (40.0,)
    # registration order (the occupancy grid serves the capped samples), each at its declared search points
    assert options.accelerators == ("samples", "samples:coarse=32", "samples:48", "samples:48:coarse=32", "samples:32",
                                    "samples:32:coarse=32", "occupancy", "coarse-grid")
    assert REGISTRY.search_points("occupancy") == ["occupancy"]  # declares no search values
    assert REGISTRY.search_points("mixed") == ["mixed"]  # its one search value is the default, left unwritten
    assert "prune-activation-obs" in REGISTRY.search("prune") and "toy-blend" not in REGISTRY.search("prune")


# ---------------------------------------------------------------- entry points: one discovery for the CLI too

class FakeEntryPoint:
    def __init__(self, name: str, obj) -> None:
        self.name, self.value, self._obj = name, f"fake_package:{name}", obj

    def load(self):
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def install_scaled(registry: Registry) -> None:
    """What an installed package's entry point exposes: a function registering a parameterised compressor."""
    def make(spec: CompressorSpec) -> FunctionCompressor:
        return FunctionCompressor(str(spec), lambda pair, _cal: blend_density(pair, spec["s"]))

    registry.register("ep-scale", make, defaults=(),
                      params=[Param("s", float, 0.1, low=0, high=1, positional=True, help="scale")])


@pytest.fixture
def entry_points(monkeypatch):
    """Install fake entry points for the global registry, which looks them up afresh; restored after."""
    def use(*eps: FakeEntryPoint) -> None:
        monkeypatch.setattr(importlib.metadata, "entry_points",
                            lambda group=None: [ep for ep in eps if group == ENTRY_POINT_GROUP])
        REGISTRY.forget_entry_points()
    yield use
    monkeypatch.undo()
    REGISTRY.forget_entry_points()


def test_an_entry_point_compressor_runs_in_nerf_eval_report(tiny, tmp_path, entry_points):
    entry_points(FakeEntryPoint("scaled", install_scaled))
    assert get_compressor("ep-scale:0.2").name == "ep-scale:0.2"
    rows = report_rows(tiny, tmp_path / "report", "ep-scale:0.2")
    assert [r["name"] for r in rows] == ["fp32", "ep-scale:0.2"] and not rows[1].get("error")
    assert "ep-scale" not in REGISTRY.copy(entry_points=False)  # it came from the entry point, not from code


def test_a_broken_entry_point_is_a_one_line_error_naming_it(entry_points, capsys, tiny, tmp_path):
    entry_points(FakeEntryPoint("broken", ModuleNotFoundError("No module named 'fake_package'")))
    with pytest.raises(CompressorError, match="entry point 'broken' .* in group nerfcompress.compressors failed to "
                                              "load: ModuleNotFoundError") as err:
        get_compressor("fp32")
    assert "\n" not in str(err.value)
    assert main(["report", "--checkpoint", str(tiny["checkpoint"]), "--scene", str(tiny["scene"]),
                 "--compressors", "fp32", "--out", str(tmp_path / "r")]) == 2
    assert "entry point 'broken'" in capsys.readouterr().err
