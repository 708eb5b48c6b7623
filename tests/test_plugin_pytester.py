"""The plugin as users meet it, through pytester: loading, options, the three ways to add compressors,
quality gates, regression against saved pytest-benchmark runs, bad input, -p no:, and pytest-xdist.

Every run uses the tiny target of pytest_nerfcompress.testing (8x8 views, 8+8 samples). The metric
libraries and the plugin's heavy modules are imported here, before any in-process run: pytester unloads
the modules a run imported, a C extension cannot be loaded twice in one process, and re-importing the
rest in every run would only cost time."""

from __future__ import annotations

import copy
import importlib
import json

import flip_evaluator  # noqa: F401
import pytest
import skimage.metrics  # noqa: F401

import pytest_nerfcompress.checks  # noqa: F401
import pytest_nerfcompress.workbench  # noqa: F401
from nerf_eval.compress import REGISTRY
from pytest_nerfcompress.testing import tiny_ini, write_tiny_target

pytest_plugins = ["pytester"]

BENCHMARK_MODULE = '''
def test_compressor(benchmark, nerf_compressed, nerf_evaluator, nerf_gate):
    benchmark.pedantic(nerf_evaluator.render_batch(nerf_compressed), rounds=1, iterations=1)
    nerf_gate(nerf_evaluator(nerf_compressed, latency=False))
'''

QUALITY_MODULE = '''
import pytest

@pytest.mark.nerf_gate(psnr_drop=0.3)
def test_quality(nerf_compressed, nerf_evaluator, nerf_gate):
    nerf_gate(nerf_evaluator(nerf_compressed, latency=False))
'''

CONFTEST_COMPRESSORS = '''
import copy

import pytest
import torch

import pytest_nerfcompress
from nerf_eval.model import ModelPair


def copied(pair):
    return ModelPair(copy.deepcopy(pair.coarse), copy.deepcopy(pair.fine), pair.config)


@pytest_nerfcompress.compressor("zero-density")
def zero_density(pair, calibration):
    out = copied(pair)
    with torch.no_grad():
        for net in out.networks().values():
            net.alpha_linear.weight.zero_()
            net.alpha_linear.bias.zero_()
    return out


@pytest_nerfcompress.compressor("fixture-copy", gates={"psnr_drop": 0.0})
@pytest.fixture(scope="session")
def fixture_copy():
    return lambda pair, calibration: copied(pair)


class ThreeChannels(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[:, :3]


@pytest_nerfcompress.compressor("wrong-shape")
def wrong_shape(pair, calibration):
    return ModelPair(ThreeChannels(copy.deepcopy(pair.coarse)), None, pair.config)


@pytest_nerfcompress.compressor("raises")
def raises(pair, calibration):
    raise RuntimeError("kaput")
'''


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_target(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def suite(pytester, tiny, monkeypatch):
    """A pytester directory whose ini points the plugin at the tiny target.

    When this suite itself runs under pytest-xdist, the nested runs must not inherit the worker's
    PYTEST_XDIST_WORKER (pytest-benchmark and the plugin would then act as if they were on a worker)."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeini(tiny_ini(tiny))
    return pytester


def test_plugin_loads_through_its_entry_point_with_its_option_group(pytester):
    assert pytester.parseconfig().pluginmanager.has_plugin("nerfcompress")
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*NeRF compression benchmarks and quality gates*", "*--nerf-scene=VALUE*",
                                 "*--nerf-missing-baseline=VALUE*", "*--nerf-compare-fail=EXPR*",
                                 "*nerf_checkpoint (string)*"])


def test_options_and_ini_keys_parse_with_the_command_line_winning(pytester):
    pytester.makeini("[pytest]\nnerf_samples = 16,32\nnerf_views = 3\n"
                     "nerf_gate =\n    psnr_drop=0.5\n    size<=2MB\nnerf_compare_fail = psnr:0.2\n")
    pytester.makepyfile(test_opts='''
        def test_opts(nerf_options, nerf_target, pytestconfig):
            o = nerf_options
            assert (o.n_coarse, o.n_fine, o.views) == (16, 32, "0,2")
            assert o.gates == ("psnr_drop=0.5", "size<=2MB") and o.compare_fail == ("psnr:0.2",)
            assert o.quick and o.latency_rays == 256 and o.latency_rounds == 1
            assert nerf_target.scene == "object" and nerf_target.optional
            assert o.checkpoint == pytestconfig.rootpath / "checkpoints/object/checkpoint.pt"
    ''')
    pytester.runpytest("--nerf-quick", "--nerf-views=0,2").assert_outcomes(passed=1)
    bad = pytester.runpytest("--nerf-scale=big")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: --nerf-scale='big': not a float"])
    bad_gate = pytester.runpytest("--nerf-gate=psnr_dorp=1")
    bad_gate.stderr.fnmatch_lines(["ERROR: --nerf-gate: unknown gate 'psnr_dorp'*"])


def test_default_target_skips_with_one_line_until_its_checkpoint_exists(pytester):
    pytester.makepyfile(test_default="def test_pair(nerf_pair):\n    pass\n")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*checkpoints/object/checkpoint.pt: checkpoint not found (train it with*"])


def test_conftest_compressors_join_the_suite_and_gates_fail_with_one_line(suite):
    suite.makeconftest(CONFTEST_COMPRESSORS)
    suite.makepyfile(test_quality=QUALITY_MODULE)
    result = suite.runpytest("-v", "--nerf-compressors=fp32,zero-density,fixture-*,wrong-shape,raises",
                             "--nerf-report-dir=report")
    result.assert_outcomes(passed=2, failed=1, errors=2)
    result.stdout.fnmatch_lines(["*test_quality?fixture-copy? PASSED*"])
    result.stdout.re_match_lines([
        r"zero-density: PSNR \d+\.\d\d dB is \d+\.\d\d dB below fp32 \d+\.\d\d dB \(allowed 0\.30\)$"])
    result.stdout.fnmatch_lines(["*raises: compress raised RuntimeError: kaput*"])
    result.stdout.fnmatch_lines(["*wrong-shape: the compressed coarse network returns shape (4, 3)*"])
    result.stdout.re_match_lines_random([r"fp32 \(reference\)\s+\d+\.\d\d\s+\+0\.00", r"zero-density\s.*FAIL$",
                                         r"fixture-copy\s.*pass$", r"raises\s.*ERROR$", r"wrong-shape\s.*ERROR$"])
    report = json.loads((suite.path / "report" / "results.json").read_text())
    status = {row["name"]: row["status"] for row in report["rows"]}
    assert status == {"fp32": "pass", "zero-density": "FAIL", "fixture-copy": "pass", "raises": "ERROR",
                      "wrong-shape": "ERROR"}
    assert (suite.path / "report" / "renders" / "scene" / "zero-density.npz").exists()


SLOW_BF16_CONFTEST = '''
import torch

import nerf_eval.hardware

nerf_eval.hardware.matmul_speed_ratio = lambda dtype: 0.02 if dtype == torch.bfloat16 else 1.0
'''


def test_emulated_half_precision_is_skipped_unless_named(suite):
    suite.makeconftest(SLOW_BF16_CONFTEST)
    suite.makepyfile(test_quality=QUALITY_MODULE)
    result = suite.runpytest("-rs", "--nerf-compressors=fp32,bf1*")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*bf16: this CPU emulates bfloat16 at 0.02x the fp32 GEMM rate*"
                                 "name it in --nerf-compressors*"])
    suite.runpytest("--nerf-compressors=bf16").assert_outcomes(passed=1)


def test_unknown_compressor_or_empty_glob_is_a_one_line_collection_error(suite):
    suite.makepyfile(test_quality=QUALITY_MODULE)
    for pattern, message in [("nope", "nerfcompress: nope: unknown compressor; known: *"),
                             ("zz*", "nerfcompress: zz[*]: no registered compressor matches; known: *")]:
        result = suite.runpytest(f"--nerf-compressors={pattern}")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([message])


def test_bad_scene_or_checkpoint_fails_naming_the_file(suite, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    suite.makepyfile(test_quality=QUALITY_MODULE)
    result = suite.runpytest("--nerf-compressors=fp32", f"--nerf-checkpoint={garbage}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{garbage}: not a readable torch checkpoint*"])
    result = suite.runpytest("--nerf-compressors=fp32", f"--nerf-scene={tmp_path / 'nowhere'}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{tmp_path / 'nowhere'}: scene file or directory not found*"])


def write_distribution(site, name, entry_points, module_source=None):
    """A fake installed distribution (a dist-info directory) that importlib.metadata finds on sys.path."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nerfcompress.compressors]\n" + entry_points)
    if module_source is not None:
        (site / f"{name}.py").write_text(module_source)


def test_hook_and_entry_point_register_compressors(suite, monkeypatch, tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "nc_extra", "ep-copy = nc_extra:COMPRESSOR\n", (
        "import copy\nfrom nerf_eval.compress import FunctionCompressor\nfrom nerf_eval.model import ModelPair\n"
        "def _copy(pair, calibration):\n"
        "    return ModelPair(copy.deepcopy(pair.coarse), copy.deepcopy(pair.fine), pair.config)\n"
        "COMPRESSOR = FunctionCompressor('ep-copy', _copy, {'psnr_drop': 0.1})\n"))
    monkeypatch.syspath_prepend(site)
    suite.makeconftest('''
        import copy
        from nerf_eval.compress import FunctionCompressor
        from nerf_eval.model import ModelPair

        def coarse_only(pair, calibration):
            return ModelPair(copy.deepcopy(pair.coarse), None, pair.config)

        def pytest_nerfcompress_register(registry, config):
            registry.add(FunctionCompressor("hooked", coarse_only))
    ''')
    suite.makepyfile(test_quality=QUALITY_MODULE.replace("@pytest.mark.nerf_gate(psnr_drop=0.3)", ""))
    result = suite.runpytest("-v", "--nerf-compressors=hooked,ep-*")
    result.stdout.fnmatch_lines(["*test_quality?hooked? PASSED*", "*test_quality?ep-copy? PASSED*"])
    result.stdout.re_match_lines_random([r"ep-copy\s.*pass$", r"hooked\s.*n/a$"])
    assert "hooked" not in REGISTRY and "ep-copy" not in REGISTRY  # the session worked on a copy

    write_distribution(site, "nc_broken", "broken = nc_missing_module:X\n")
    importlib.invalidate_caches()
    result = suite.runpytest("--nerf-compressors=fp32")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*entry point 'broken' (nc_missing_module:X) in group nerfcompress.compressors "
                                 "failed to load: ModuleNotFoundError*"])


def test_benchmark_compare_fails_on_a_better_saved_run_and_passes_on_a_matching_one(suite):
    suite.makepyfile(test_bench=BENCHMARK_MODULE)
    args = ["--nerf-compressors=fp32", "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning"]
    suite.runpytest(*args, "--benchmark-autosave").assert_outcomes(passed=1)
    (saved,) = suite.path.glob(".benchmarks/*/0001_*.json")
    original = saved.read_text()
    data = json.loads(original)
    quality = data["benchmarks"][0]["extra_info"]["nerfcompress"]
    assert quality["psnr"] > 40.0 and len(quality["checkpoint_sha256"]) == 64 and quality["size_bytes"] > 0

    def save_as(name, **changes):
        edited = copy.deepcopy(data)
        edited["benchmarks"][0]["extra_info"]["nerfcompress"].update(changes)
        (saved.parent / name).write_text(json.dumps(edited))

    save_as("0002_better.json", psnr=quality["psnr"] + 1.0)
    result = suite.runpytest(*args, "--benchmark-compare")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([r"fp32: PSNR \d+\.\d\d dB is 1\.00 dB below saved run 0002_better\.json "
                                  r"\d+\.\d\d dB \(allowed 0\.10\)$"])
    suite.runpytest(*args, "--benchmark-compare=0001").assert_outcomes(passed=1)
    suite.runpytest(*args, "--benchmark-compare=0002", "--nerf-compare-fail=psnr:1.5").assert_outcomes(passed=1)

    save_as("0003_smaller.json", size_bytes=quality["size_bytes"] - 1)
    result = suite.runpytest(*args, "--benchmark-compare=0003")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["fp32: size * above saved run 0003_smaller.json *"])

    save_as("0004_other.json", checkpoint_sha256="0" * 64)
    result = suite.runpytest(*args, "--benchmark-compare=0004")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*fp32: not compared with saved run 0004_other.json: it was measured on scene *"
                                 "with checkpoint 000000000000, this run uses *"])

    (saved.parent / "0005_corrupt.json").write_text("{oops")
    result = suite.runpytest(*args, "--benchmark-compare=0005")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*0005_corrupt.json: corrupt saved benchmark run (invalid JSON at line 1*"])
    assert saved.read_text() == original  # saved runs are read, never rewritten


def test_no_saved_run_warns_by_default_and_fails_or_skips_on_request(suite):
    suite.makepyfile(test_bench=BENCHMARK_MODULE)
    args = ["--nerf-compressors=fp32", "--benchmark-compare", "-W",
            "ignore::pytest_benchmark.logger.PytestBenchmarkWarning"]
    message = "*fp32: no saved benchmark run to compare with (--benchmark-compare); quality not compared*"
    warned = suite.runpytest(*args)
    warned.assert_outcomes(passed=1, warnings=1)
    warned.stdout.fnmatch_lines([message])
    failed = suite.runpytest(*args, "--nerf-missing-baseline=fail")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines([message])
    suite.runpytest(*args, "--nerf-missing-baseline=skip").assert_outcomes(skipped=1)


def test_only_sessions_that_measure_keep_freed_memory(suite, monkeypatch):
    calls = []
    monkeypatch.setattr("nerf_eval.memory.keep_freed_memory", lambda: calls.append(1) or True)
    suite.makepyfile(test_plain="def test_plain():\n    pass\n")
    suite.runpytest("test_plain.py").assert_outcomes(passed=1)
    assert calls == []
    suite.makepyfile(test_measure="def test_a(nerf_scene):\n    pass\n\ndef test_b(nerf_pair):\n    pass\n")
    suite.runpytest("test_measure.py").assert_outcomes(passed=2)
    assert calls == [1]


def test_p_no_nerfcompress_disables_the_plugin(pytester):
    pytester.makepyfile(test_x="def test_x(nerf_scene):\n    pass\n")
    result = pytester.runpytest("-p", "no:nerfcompress")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'nerf_scene' not found*"])
    assert pytester.runpytest("-p", "no:nerfcompress", "--nerf-views=1").ret == pytest.ExitCode.USAGE_ERROR


def test_quality_gates_run_on_xdist_workers_and_merge_on_the_controller(suite):
    pytest.importorskip("xdist")
    suite.makeconftest(CONFTEST_COMPRESSORS)
    suite.makepyfile(test_quality=QUALITY_MODULE)
    result = suite.runpytest_subprocess("-n", "2", "--nerf-compressors=fp32,zero-density,bf16")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.re_match_lines_random([
        r"zero-density: PSNR \d+\.\d\d dB is \d+\.\d\d dB below fp32 \d+\.\d\d dB \(allowed 0\.30\)$",
        r"fp32 \(reference\)\s+\d+\.\d\d", r"zero-density\s.*FAIL$", r"bf16\s.*pass$", r"fp32\s.*pass$"])
    result.stdout.fnmatch_lines(["nerfcompress: pytest-xdist is active; latency and speed-up need a serial run*"])
