"""Unit tests of the plugin's pure parts: gate expressions and checks, view selection, saved-run
parsing and the summary table (no torch, no pytester)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nerf_eval.measure.gates import (METRICS, GateError, GateSpec, check_saved, parse_limit, parse_tolerance,
                                     tolerances)
from nerf_eval.measure.spec import parse_views
from pytest_nerfcompress.storage import SavedRunError, load_saved_run
from pytest_nerfcompress.summary import Summary


def psnr_values():
    return st.floats(min_value=5.0, max_value=60.0, allow_nan=False)


def tolerance_amounts():
    return st.floats(min_value=0.0, max_value=5.0, allow_nan=False)


def metric_names():
    return st.sampled_from(sorted(METRICS))


def test_psnr_drop_message_is_the_documented_line():
    out = GateSpec.parse(["psnr_drop=0.3"]).check("int8-ptq-both", {"psnr": 24.91}, {"psnr": 26.53})
    assert out.failures == ["int8-ptq-both: PSNR 24.91 dB is 1.62 dB below fp32 26.53 dB (allowed 0.30)"]


@given(base=psnr_values(), drop=st.floats(min_value=-5.0, max_value=5.0), allowed=tolerance_amounts())
def test_psnr_drop_fails_exactly_when_the_drop_exceeds_the_allowance(base, drop, allowed):
    out = GateSpec(relative={"psnr_drop": allowed}).check("c", {"psnr": base - drop}, {"psnr": base})
    assert out.passed == ((base - (base - drop)) <= allowed)


def test_size_ratio_speedup_and_absolute_limits():
    rec = {"size_bytes": 1.2e6, "latency_s": 0.9, "psnr": 25.0}
    base = {"size_bytes": 2.4e6, "latency_s": 1.0, "psnr": 26.0}
    out = GateSpec.parse(["size_ratio=0.4", "min_speedup=1.5", "psnr>=30", "size<=2MB"]).check("q", rec, base)
    assert "q: size 1.20 MB is 0.50x fp32 2.40 MB (allowed 0.40x)" in out.failures
    assert any(f.startswith("q: speed-up 1.11x over fp32 is below the required 1.50x") for f in out.failures)
    assert "q: PSNR 25.00 dB is not >= 30.00 dB" in out.failures
    assert len(out.failures) == 3  # size<=2MB holds


def test_missing_metric_fails_but_missing_latency_with_a_reason_warns():
    spec = GateSpec.parse(["depth<=0.1", "min_speedup=2"])
    out = spec.check("c", {"depth_error": None, "latency_s": None}, {"latency_s": 1.0})
    assert len(out.failures) == 2
    out = spec.check("c", {"depth_error": 0.01, "latency_s": None}, {}, latency_note="xdist is active")
    assert out.passed and out.warnings == ["c: min_speedup not checked: xdist is active"]


def test_non_finite_psnr_fails_relative_and_absolute_gates():
    out = GateSpec.parse(["psnr_drop=100", "psnr>=0"]).check("nan-comp", {"psnr": math.nan}, {"psnr": 30.0})
    assert len(out.failures) == 2 and all(f.startswith("nan-comp: ") for f in out.failures)


def test_later_specs_override_earlier_ones_per_key_and_per_limit_slot():
    earlier = GateSpec.parse(["psnr_drop=0.1", "psnr>=30", "size<=1MB"])
    merged = earlier.merged(GateSpec.parse(["psnr>=20"], {"psnr_drop": 2}))
    assert merged.relative == {"psnr_drop": 2.0}
    assert sorted(limit.text for limit in merged.limits.values()) == ["psnr>=20", "size<=1MB"]


@pytest.mark.parametrize("text, value", [("size<=2MB", 2e6), ("size<=1.5MiB", 1.5 * 2 ** 20),
                                         ("latency<=50ms", 0.05), ("psnr>=30dB", 30.0), ("ssim>0.9", 0.9)])
def test_limit_units(text, value):
    assert parse_limit(text).value == pytest.approx(value)


@pytest.mark.parametrize("bad", ["psnr>=30MB", "bogus>=1", "psnr=>3", "size<=lots", "psnr>=1e999"])
def test_bad_limits_are_one_line_errors(bad):
    with pytest.raises(GateError) as e:
        parse_limit(bad)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("bad, named", [("psnr_dorp=0.3", "unknown gate 'psnr_dorp'"),
                                        ("psnr_drop=-1", "must be a finite number >= 0"),
                                        ("psnr_drop=abc", "is not a number")])
def test_bad_relative_gates_name_the_problem(bad, named):
    with pytest.raises(GateError, match=named):
        GateSpec.parse([bad])


def test_worst_drop_is_an_alias_of_worst_psnr_drop():
    assert GateSpec.parse(["worst_drop=0.5"]).relative == {"worst_psnr_drop": 0.5}


@given(name=metric_names(), saved=st.floats(min_value=0.01, max_value=100.0),
       step=st.floats(min_value=0.0, max_value=10.0))
def test_a_change_in_the_good_direction_never_fails_a_saved_run_check(name, saved, step):
    m = METRICS[name]
    now = saved + step if m.higher_is_better else saved - step
    out = check_saved("c", {m.key: now}, {m.key: saved}, "0001_x.json", {name: parse_tolerance(f"{name}:0")})
    assert out.passed and not out.warnings


def test_saved_run_regressions_psnr_fails_size_percent_latency_only_warns():
    checks = tolerances(["size:2%"])
    assert set(checks) == {"psnr", "size", "latency", "speedup"} and checks["psnr"].amount == 0.1
    out = check_saved("c", {"psnr": 25.0, "size_bytes": 1030.0, "latency_s": 2.0},
                      {"psnr": 25.5, "size_bytes": 1000.0, "latency_s": 1.0}, "0001_a.json", checks)
    assert out.failures[0] == "c: PSNR 25.00 dB is 0.50 dB below saved run 0001_a.json 25.50 dB (allowed 0.10)"
    assert out.failures[1].startswith("c: size 1.0 KB is 0.0 KB (+3.0%) above saved run 0001_a.json")
    assert len(out.failures) == 2 and len(out.warnings) == 1 and "latency" in out.warnings[0]


@pytest.mark.parametrize("bad", ["psnr", "psnr:", "nope:1", "size:x%", "psnr:-1", "size:1.2.3%", "size:.%",
                                 "latency:1e400%", "size:1e999MB"])
def test_bad_tolerances(bad):
    with pytest.raises(GateError) as e:
        parse_tolerance(bad)
    assert "\n" not in str(e.value)


gate_words = st.one_of(st.sampled_from(["psnr", "ssim", "size", "latency", "speedup", "worst", "depth", ":", ">=",
                                         "psnr_drop", "size_ratio", "min_speedup", "=",
                                         "<", "%", ".", "-", "1", "0.5", "1e999", "1e-400", "MB", "ms", "dB", " "]),
                       st.text(max_size=2))


@given(st.lists(gate_words, max_size=6).map("".join))
def test_any_gate_expression_parses_or_is_a_one_line_gate_error(text):
    """--nerf-compare-fail and limits come from command lines and ini files: never another exception."""
    for parse in (parse_tolerance, parse_limit, lambda t: GateSpec.parse([t])):
        try:
            parse(text)
        except GateError as e:
            assert "\n" not in str(e)


@pytest.mark.parametrize("spec, n, expected", [("1", 10, [5]), ("3", 10, [0, 4, 9]), ("0,4", 10, [0, 4]),
                                               ("5,", 10, [5]), ("all", 3, [0, 1, 2]), ("20", 3, [0, 1, 2])])
def test_parse_views(spec, n, expected):
    assert parse_views(spec, n) == expected


@pytest.mark.parametrize("bad", ["zero", "0", "1.5"])
def test_parse_views_rejects_nonsense(bad):
    with pytest.raises(ValueError, match="--nerf-views"):
        parse_views(bad, 10)


def test_corrupt_and_malformed_saved_runs_name_the_file(tmp_path):
    bad = tmp_path / "0001_bad.json"
    bad.write_text("{not json")
    with pytest.raises(SavedRunError, match="0001_bad.json: corrupt saved benchmark run"):
        load_saved_run(bad)
    odd = tmp_path / "0002_odd.json"
    odd.write_text(json.dumps({"benchmarks": [{"name": "x"}]}))
    with pytest.raises(SavedRunError, match="0002_odd.json: not a pytest-benchmark saved run"):
        load_saved_run(odd)


def test_summary_merges_entries_and_marks_errors():
    s = Summary()
    rec = {"kind": "record", "target": "t", "name": "a", "record": {"psnr": 20.0, "size_bytes": 50},
           "baseline": {"psnr": 21.0, "size_bytes": 100, "latency_s": 0.2}}
    gate = {"kind": "gate", "target": "t", "name": "a", "failures": ["a: bad"], "warnings": [], "checked": ["x"]}
    s.add_report("m::t[a]", "failed", [("nerfcompress", rec), ("nerfcompress", gate), ("other", 1)])
    s.add_report("m::t[a]", "passed", [("nerfcompress", rec), ("nerfcompress", gate)])  # teardown: no double count
    s.add_report("m::t[b]", "failed", [("nerfcompress", {"kind": "error", "target": "t", "name": "b",
                                                         "message": "b: compress raised"})])
    assert s.rows[("t", "a")].status == "FAIL" and s.rows[("t", "a")].tests_failed == 1
    assert s.rows[("t", "b")].status == "ERROR"
    table = s.table()
    assert table[2].split()[:3] == ["fp32", "(reference)", "21.00"]
    assert "-1.00" in table[3] and "0.50x" in table[3] and table[3].rstrip().endswith("FAIL")
    assert "ERROR b: compress raised" in s.messages()


def test_saved_run_speedup_warns_by_default_and_fails_when_asked():
    record, saved = {"psnr": 25.0, "speedup": 1.5}, {"psnr": 25.0, "speedup": 2.0}
    out = check_saved("c", record, saved, "0001_a.json", tolerances())
    assert out.passed and out.warnings == [
        "c: paired speed-up 1.50x is 0.50x (+25.0%) below saved run 0001_a.json 2.00x (allowed 20%)"]
    out = check_saved("c", record, saved, "0001_a.json", tolerances(["speedup:10%"]))
    assert out.failures and "paired speed-up" in out.failures[0]
    assert check_saved("c", {"speedup": 1.9}, saved, "0001_a.json", tolerances(["speedup:10%"])).passed
    assert GateSpec.parse(["speedup>=2"]).limits  # an absolute floor on the paired speed-up works as well


def test_malformed_limits_and_tolerances_name_the_option_that_gave_them():
    with pytest.raises(GateError, match=r"^--nerf-gate: '0': expected an absolute limit like 'psnr>=30'"):
        GateSpec.parse(["0"], where="--nerf-gate")
    with pytest.raises(GateError, match=r"^--nerf-compare-fail: '0': expected METRIC:AMOUNT"):
        tolerances(["psnr:0.2", "0"], where="--nerf-compare-fail")
