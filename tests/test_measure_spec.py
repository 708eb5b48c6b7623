"""The measurement spec and the record: one fingerprint, one rule for "measured the same way", and
records that read back what earlier versions of the plugin and of `nerf-eval report` wrote."""

from __future__ import annotations

import math

import pytest

from nerf_eval.measure.record import Record
from nerf_eval.measure.spec import MeasurementSpec, portable


def spec(**changes) -> MeasurementSpec:
    fields = dict(scene="object", checkpoint_sha256="ab" * 32, views=(5,), scale=0.5, width=50, height=50,
                  n_coarse=64, n_fine=128, calibration_rays=2048, latency_rays=256)
    return MeasurementSpec(**{**fields, **changes})


def test_a_spec_round_trips_and_matches_itself():
    s = spec()
    assert MeasurementSpec.from_dict(s.to_dict()) == s
    assert s.mismatch(s.to_dict()) is None and len(s.fingerprint) == 64


@pytest.mark.parametrize("change", [dict(views=(6,)), dict(scale=0.25), dict(width=25), dict(n_fine=64),
                                    dict(calibration_rays=1024), dict(calibration_seed=3), dict(latency_rays=512),
                                    dict(latency_seed=0), dict(device="cuda"), dict(scene="forward"),
                                    dict(checkpoint_sha256="cd" * 32)])
def test_every_field_changes_the_fingerprint_and_is_named_as_the_mismatch(change):
    s, other = spec(), spec(**change)
    assert other.fingerprint != s.fingerprint
    reason = s.mismatch(other.to_dict())
    assert reason is not None
    key = next(iter(change))
    if key in ("scene", "checkpoint_sha256"):
        assert reason.startswith("it was measured on scene")
    else:
        assert f"settings {'samples' if key == 'n_fine' else key}=" in reason


def test_a_record_saved_before_specs_compares_on_the_fields_it_holds():
    """Saved pytest-benchmark runs of earlier plugin versions hold scene, checkpoint and four settings."""
    legacy = {"name": "c", "target": "object", "scene": "object", "checkpoint_sha256": "ab" * 32,
              "settings": {"views": [5], "height": 50, "width": 50, "samples": [64, 128]}, "psnr": 30.0}
    assert spec().mismatch(legacy) is None
    assert spec(calibration_rays=1).mismatch(legacy) is None  # not recorded then: not compared
    assert "samples=[64, 128]" in spec(n_fine=64).mismatch(legacy)
    assert "device=cpu" in spec(device="cuda").mismatch(legacy)  # a saved run without a device was on the CPU
    assert "scene 'forward'" in spec().mismatch(dict(legacy, scene="forward"))
    assert Record.from_dict(legacy).psnr == 30.0


def test_an_earlier_report_compares_by_checkpoint_prefix_and_view_count():
    legacy = {"scene": "object", "checkpoint_sha256": "ab" * 8,
              "settings": {"views": 1, "width": 50, "height": 50, "samples": [64, 128], "latency_rays": 256}}
    assert spec().mismatch(legacy) is None
    assert "views=1" in spec(views=(1, 2)).mismatch(legacy)
    assert spec(checkpoint_sha256="cd" * 32).mismatch(legacy).startswith("it was measured on scene")


def test_records_read_the_names_and_nans_of_earlier_reports():
    row = {"name": "int8", "psnr": 24.0, "latency_speedup": 2.5, "latency_speedup_spread": 0.1,
           "baseline_latency_s": 0.2, "depth_error": float("nan"), "worst_view": -1, "unknown": 1}
    rec = Record.from_dict(row)
    assert (rec.speedup, rec.speedup_spread, rec.reference_latency_s) == (2.5, 0.1, 0.2)
    assert rec.depth_error is None and rec.worst_view is None
    assert Record.from_dict(rec.to_dict()) == rec
    assert Record("x", psnr=math.inf, per_view=[{"psnr": math.nan}]).to_dict()["per_view"] == [{"psnr": None}]


def test_portable_names_files_without_machine_paths(tmp_path):
    assert portable("object", tmp_path) == "object"
    assert portable(tmp_path / "data" / "lego", tmp_path) == "data/lego"
    assert portable("/elsewhere/lego", tmp_path) == "lego"


def test_a_malformed_saved_document_is_a_one_line_reason_not_an_exception():
    """Found by fuzzing saved runs (tests/test_fuzz_inputs.py): settings that are not an object, and
    values or keys that span lines."""
    doc = spec().to_dict()
    assert spec().mismatch({**doc, "settings": True}) == "its settings are True, not a JSON object"
    reason = spec().mismatch({**doc, "settings": {**doc["settings"], "device": "cpu\nand more", "x\ny": 1}})
    assert "\n" not in reason and "device='cpu\\nand more'" in reason and "'x\\ny'=1" in reason


def test_a_saved_metric_of_another_type_is_not_compared_and_says_so():
    from nerf_eval.measure.gates import check_saved, tolerances

    out = check_saved("fp32", {"psnr": 30.0, "size_bytes": 100}, {"psnr": "30", "size_bytes": [1]}, "0001_a.json",
                      tolerances())
    assert out.failures == [] and out.checked == []
    assert out.warnings == ["fp32: saved run 0001_a.json has no PSNR; not compared",
                            "fp32: saved run 0001_a.json has no size; not compared"]
