"""The plugin's Workbench on a tiny target: caching and its invalidation, validation of what
compressors return, and one-line errors for bad scenes and checkpoints."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from nerf_eval.checkpoint import file_hash, save_checkpoint
from nerf_eval.compress import FunctionCompressor, get_compressor
from nerf_eval.errors import CheckpointError, CompressorError, SceneError
from nerf_eval.model import ModelPair
from nerf_eval.measure import workbench as workbench_module
from nerf_eval.measure.cache import EvalCache, model_fingerprint
from pytest_nerfcompress.options import NerfOptions
from pytest_nerfcompress.target import Target
from pytest_nerfcompress.testing import tiny_pair, write_tiny_target
from nerf_eval.measure.workbench import CheckpointMissing, Workbench


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_target(tmp_path_factory.mktemp("tiny"))


def tiny_options(tiny, **changes) -> NerfOptions:
    options = NerfOptions(scene=str(tiny["scene"]), checkpoint=tiny["checkpoint"], checkpoint_is_default=False,
                          compressors=(), views="1", scale=1.0, n_coarse=8, n_fine=8, max_psnr_drop=None,
                          report_dir=None, latency_rays=32, latency_rounds=1, calibration_rays=64, latency_threads=1,
                          missing_baseline="warn", gates=(), compare_fail=(), quick=False)
    return dataclasses.replace(options, **changes)


def bench(tiny, cache_dir=None, checkpoint=None, optional=False, **changes) -> Workbench:
    target = Target(str(tiny["scene"]), checkpoint or tiny["checkpoint"], optional=optional)
    return Workbench(target, tiny_options(tiny, **changes), EvalCache(cache_dir))


@pytest.fixture
def evaluations(monkeypatch):
    """Counts the renders the Workbench runs (cache misses)."""
    calls = []
    real = workbench_module.evaluate

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(workbench_module, "evaluate", counting)
    return calls


def test_fp32_reference_is_rendered_once_then_read_from_the_disk_cache(tiny, tmp_path, evaluations):
    first = bench(tiny, tmp_path).baseline
    again = bench(tiny, tmp_path).baseline  # a new session: memory is empty, the disk is not
    assert len(evaluations) == 1
    assert first.psnr == again.psnr and first.psnr > 40.0  # the scene is the model's own render
    assert first.size_bytes == again.size_bytes > 0


def test_a_new_checkpoint_or_other_views_miss_the_cache(tiny, tmp_path, evaluations):
    bench(tiny, tmp_path).baseline
    other = tmp_path / "other.pt"
    save_checkpoint(other, tiny_pair(seed=1))
    changed = bench(tiny, tmp_path, checkpoint=other).baseline
    bench(tiny, tmp_path, views="0,").baseline
    assert len(evaluations) == 3
    assert changed.checkpoint_sha256 != bench(tiny, tmp_path).baseline.checkpoint_sha256


def test_an_identity_compressor_shares_the_reference_entry(tiny, evaluations):
    wb = bench(tiny)
    comp = get_compressor("fp32")
    out = wb.compressed("fp32", comp)
    assert wb.compressed("fp32", comp) is out  # built once
    assert wb.record("fp32", out.pair).psnr == wb.baseline.psnr
    assert len(evaluations) == 1


def test_bf16_halves_the_size_and_keeps_the_psnr_close(tiny):
    wb = bench(tiny)
    rec = wb.record("bf16", wb.compressed("bf16", get_compressor("bf16")).pair)
    assert rec.size_bytes < 0.7 * wb.baseline.size_bytes
    assert abs(rec.psnr - wb.baseline.psnr) < 10.0


def _bad(fn):
    return FunctionCompressor("bad", fn)


class ThreeChannels(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[:, :3]


def _raises(pair, calibration):
    raise RuntimeError("boom\nsecond line")


@pytest.mark.parametrize("fn, message", [
    (lambda pair, cal: None, "bad: compress returned NoneType, expected a ModelPair"),
    (lambda pair, cal: ModelPair(ThreeChannels(copy.deepcopy(pair.coarse)), None, pair.config),
     "bad: the compressed coarse network returns shape (4, 3) for 4 inputs, expected (4, 4)"),
    (lambda pair, cal: ModelPair(copy.deepcopy(pair.coarse).double(), None, pair.config),
     "bad: the compressed coarse network fails on a (4, 42) input"),
    (_raises, "bad: compress raised RuntimeError: boom"),
], ids=["not-a-pair", "wrong-shape", "fails-on-input", "raises"])
def test_bad_compressor_output_is_one_line_naming_the_compressor(tiny, fn, message):
    wb = bench(tiny)
    with pytest.raises(CompressorError) as e:
        wb.compressed("bad", _bad(fn))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_in_place_modification_is_refused_and_the_reference_reloaded(tiny):
    wb = bench(tiny)
    before = model_fingerprint(wb.pair)

    def zero_in_place(pair, cal):
        with torch.no_grad():
            pair.coarse.alpha_linear.weight.zero_()
        return pair

    with pytest.raises(CompressorError, match="modified the fp32 model in place"):
        wb.compressed("bad", _bad(zero_in_place))
    assert model_fingerprint(wb.pair) == before


def test_missing_default_checkpoint_is_its_own_error_and_bad_files_name_themselves(tiny, tmp_path):
    with pytest.raises(CheckpointMissing, match="missing.pt: checkpoint not found"):
        bench(tiny, checkpoint=tmp_path / "missing.pt", optional=True).pair
    with pytest.raises(CheckpointError) as e:
        bench(tiny, checkpoint=tmp_path / "missing.pt").pair
    assert not isinstance(e.value, CheckpointMissing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        bench(tiny, checkpoint=garbage).pair
    with pytest.raises(SceneError, match="nowhere"):
        Workbench(Target(str(tmp_path / "nowhere"), garbage), tiny_options(tiny), EvalCache(None)).scene
    with pytest.raises(SceneError, match="out of range"):
        bench(tiny, views="0,99").views


def test_checkpoint_must_be_the_file_its_model_card_describes_and_record_this_scene(tiny, tmp_path):
    import json
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny["checkpoint"], run / "checkpoint.pt")
    (run / "model_card.json").write_text(json.dumps({"checkpoint": "checkpoint.pt", "sha256": "0" * 64}))
    with pytest.raises(CheckpointError, match=r"checkpoint.pt: sha256 \w{12} is not the 000000000000 its model card"):
        bench(tiny, checkpoint=run / "checkpoint.pt").pair
    (run / "model_card.json").write_text(json.dumps({"checkpoint": "checkpoint.pt",
                                                     "sha256": file_hash(run / "checkpoint.pt")}))
    assert bench(tiny, checkpoint=run / "checkpoint.pt").pair.meta["scene"] == "blender:scene"
    other = write_tiny_target(tmp_path / "other", recorded_scene="builtin:object:seed=0")["checkpoint"]
    with pytest.raises(CheckpointError, match="trained on scene 'builtin:object:seed=0', but the scene under test"):
        bench(tiny, checkpoint=other).pair
    assert bench(tiny, checkpoint=other, cross_scene=True).pair is not None


def test_on_device_is_the_pair_itself_on_the_cpu_and_refuses_cpu_only_int8_elsewhere(tiny, tmp_path):
    from nerf_eval.compress import get_compressor
    from nerf_eval.errors import CompressorError

    cpu = bench(tiny, tmp_path / "cache")
    assert cpu.on_device(cpu.pair) is cpu.pair
    int8 = get_compressor("int8-ptq-both").compress(cpu.pair, cpu.calibration_rays)
    gpu = bench(tiny, tmp_path / "cache2", device="cuda")
    with pytest.raises(CompressorError, match="cannot run on cuda: torch's quantized modules .* CPU kernels only"):
        gpu.on_device(int8)
    assert gpu.spec.settings()["device"] == "cuda" and "device" not in cpu.spec.settings()


def test_paired_timing_pairs_each_model_with_fp32_once_per_session(tiny, tmp_path):
    from nerf_eval.compress import get_compressor

    wb = bench(tiny, tmp_path / "cache", latency_rounds=3)
    pruned = get_compressor("prune-random:0.5").compress(wb.pair, wb.calibration_rays)
    t = wb.paired_timing(pruned)
    assert t.rounds == 3 and len(t.ratios) == 3 and t.speedup > 0 and t.reference_latency_s > 0
    assert wb.paired_timing(pruned) is t  # measured once
    assert bench(tiny, tmp_path / "c2", latency_rounds=3, quick=False).paired_timing(wb.pair) is not None
