"""The plugin as users meet it, through pytester: loading, options, the three ways to add compressors,
quality gates, regression against saved pytest-benchmark runs, bad input, -p no:, and pytest-xdist.

Every run uses the tiny target of pytest_nerfcompress.testing (8x8 views, 8+8 samples), which also loads
the metric libraries before any in-process run (see its docstring). The plugin's heavy modules are
imported here: pytester unloads the modules a run imported, and re-importing them in every run would
only cost time."""

from __future__ import annotations

import copy
import importlib
import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nerf_eval.history  # noqa: F401
import nerf_eval.memory  # noqa: F401  (patched below: the runs must find this module object)
import pytest_nerfcompress.checks  # noqa: F401
import nerf_eval.measure.workbench  # noqa: F401
from nerf_eval.compress import REGISTRY
from nerf_eval.machine import machine_identity
from pytest_nerfcompress.options import LIST_OPTIONS, VALUE_OPTIONS
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
            assert o.quick and o.latency_rays == 128 and o.latency_rounds == 9 and o.latency_threads == 1
            assert nerf_target.scene == "object" and not nerf_target.optional
            assert o.checkpoint == pytestconfig.rootpath / "checkpoints/object/checkpoint.pt"
    ''')
    pytester.runpytest("--nerf-quick", "--nerf-views=0,2").assert_outcomes(passed=1)
    for option, message in [("--nerf-scale=big", "--nerf-scale='big': not a number"),
                            ("--nerf-scale=0", "--nerf-scale='0': must be in (0, 1]"),
                            ("--nerf-max-psnr-drop=nan", "--nerf-max-psnr-drop='nan': not a finite number"),
                            ("--nerf-latency-rays=2.5", "--nerf-latency-rays='2.5': not an integer"),
                            ("--nerf-latency-threads=999999999",
                             "--nerf-latency-threads='999999999': more than this machine's * CPUs"),
                            ("--nerf-gate=psnr_dorp=1", "--nerf-gate: unknown gate 'psnr_dorp'*"),
                            ("--nerf-views=a,b", "--nerf-views='a,b': expected a count >= 1, positions >= 0*")]:
        bad = pytester.runpytest(option)
        assert bad.ret == pytest.ExitCode.USAGE_ERROR
        bad.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_relative_paths_on_the_command_line_are_taken_from_the_rootdir(pytester, monkeypatch):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_paths='''
        def test_paths(nerf_options, pytestconfig):
            assert nerf_options.checkpoint == pytestconfig.rootpath / "ck/model.pt"
            assert nerf_options.report_dir == pytestconfig.rootpath / "out"
    ''')
    sub = pytester.mkdir("sub")
    monkeypatch.chdir(sub)
    result = pytester.runpytest(str(pytester.path / "test_paths.py"), "--nerf-checkpoint=ck/model.pt",
                                "--nerf-report-dir=out")
    result.assert_outcomes(passed=1)


def one_error_line(result) -> str:
    """The run's only non-empty stderr line, after checking that pytest refused to run (usage error)."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_missing_default_checkpoint_and_scene_typo_fail_with_one_line_before_any_test(pytester):
    pytester.makepyfile(test_quality=QUALITY_MODULE)
    line = one_error_line(pytester.runpytest("--nerf-compressors=fp32"))
    assert line == (f"ERROR: nerfcompress: {pytester.path}/checkpoints/object/checkpoint.pt: checkpoint not found "
                    "(the default for scene 'object'); pass --nerf-checkpoint=PATH or train one with "
                    f"`nerf-eval train --scene object --out {pytester.path}/checkpoints/object`")
    line = one_error_line(pytester.runpytest("--nerf-compressors=fp32", "--nerf-scene=nope"))
    assert line.startswith("ERROR: nerfcompress: nope: unknown scene; give a built-in name (")
    # a session that measures nothing does not need a target
    pytester.makepyfile(test_quality="def test_plain(nerf_options):\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_checkpoint_of_another_scene_fails_with_one_line_unless_intended(suite, tmp_path):
    other = write_tiny_target(tmp_path / "other", recorded_scene="builtin:forward:seed=0")["checkpoint"]
    suite.makepyfile(test_quality=QUALITY_MODULE)
    args = ["--nerf-compressors=fp32", f"--nerf-checkpoint={other}"]
    line = one_error_line(suite.runpytest(*args))
    assert line.startswith(f"ERROR: nerfcompress: {other}: trained on scene 'builtin:forward:seed=0', but the "
                           "scene under test ")
    assert line.endswith("is 'blender:scene'; pass --nerf-cross-scene if measuring it there is intended")
    suite.runpytest(*args, "--nerf-cross-scene").assert_outcomes(passed=1)


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


def test_bad_scene_or_checkpoint_file_fails_with_one_line_naming_it(suite, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    suite.makepyfile(test_quality=QUALITY_MODULE)
    line = one_error_line(suite.runpytest("--nerf-compressors=fp32", f"--nerf-checkpoint={garbage}"))
    assert line.startswith(f"ERROR: nerfcompress: {garbage}: not a readable torch checkpoint")
    line = one_error_line(suite.runpytest("--nerf-compressors=fp32", f"--nerf-scene={tmp_path / 'nowhere'}"))
    assert line == f"ERROR: nerfcompress: {tmp_path / 'nowhere'}: scene file or directory not found"
    line = one_error_line(suite.runpytest("--nerf-compressors=fp32", "--nerf-samples=1,2"))
    assert line == ("ERROR: nerfcompress: 1+2 samples per ray: need n_fine >= 0 and n_coarse >= 2 "
                    "(>= 3 with fine samples)")


def test_a_ray_count_too_large_for_memory_is_one_line(suite, monkeypatch):
    """The allocator's failure is raised here rather than provoked: a real allocation of that size could
    succeed and swap on a machine that overcommits memory."""
    def allocate(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 7999999992 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(nerf_eval.measure.workbench, "latency_batch", allocate)
    suite.makepyfile(test_quality=QUALITY_MODULE)
    line = one_error_line(suite.runpytest("--nerf-compressors=fp32", "--nerf-latency-rays=999999999"))
    assert line == ("ERROR: nerfcompress: out of memory (an allocation of 7.5 GiB): a ray, sample or chunk count "
                    "given is too large for this machine")


def test_a_report_dir_that_is_a_file_or_holds_the_users_results_is_refused_before_any_test(suite, tmp_path):
    suite.makepyfile(test_quality=QUALITY_MODULE)
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    line = one_error_line(suite.runpytest("--nerf-compressors=fp32", f"--nerf-report-dir={a_file}"))
    assert line == f"ERROR: --nerf-report-dir {a_file}: exists and is not a directory"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text('{"my": "figures"}')
    line = one_error_line(suite.runpytest("--nerf-compressors=fp32", f"--nerf-report-dir={mine}"))
    assert line == (f"ERROR: {mine / 'results.json'}: not a results.json nerfcompress wrote; refusing to overwrite "
                    "it (choose another --nerf-report-dir)")
    assert (mine / "results.json").read_text() == '{"my": "figures"}' and a_file.read_text() == "mine"
    ours = tmp_path / "ours"
    for _ in range(2):  # a run replaces its own earlier results
        suite.runpytest("--nerf-compressors=fp32", f"--nerf-report-dir={ours}").assert_outcomes(passed=1)
    assert [row["name"] for row in json.loads((ours / "results.json").read_text())["rows"]] == ["fp32"]


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
    # the session worked on a copy: what it registered (the hook, its entry points) is not in the code's registry
    assert "hooked" not in REGISTRY and "ep-copy" not in REGISTRY.copy(entry_points=False)
    REGISTRY.forget_entry_points()  # the global registry looks the installed packages up again when next used

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
    # machine_info holds what stays the same between runs here (pytest-benchmark compares it) ...
    assert data["machine_info"]["nerfcompress"] == machine_identity()
    machine = data["nerfcompress"]["machine"]  # ... the saved run also which kernels made its timings
    assert machine["int8_engine"] and set(machine["linear_kernels"]) == {"bf16", "fp16"} and machine["summary"]

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


def test_the_plugin_leaves_the_users_allocator_alone(suite, monkeypatch):
    """Renders are timed alike without process-wide malloc settings (`nerf_eval.render.NET_CHUNK`), so a
    session that measures NeRFs does not change glibc's allocator of the user's process."""
    calls = []
    monkeypatch.setattr("nerf_eval.memory.keep_freed_memory", lambda: calls.append(1) or True)
    suite.makepyfile(test_measure="def test_a(nerf_scene):\n    pass\n\ndef test_b(nerf_pair):\n    pass\n")
    suite.runpytest("test_measure.py").assert_outcomes(passed=2)
    assert calls == []


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


MEASURE_ONLY_MODULE = '''
def test_measure(nerf_compressed, nerf_evaluator):
    nerf_evaluator(nerf_compressed, latency=False)
'''
IGNORE_BENCHMARK_WARNINGS = ["-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning"]


def raise_saved_psnr(path, by: float) -> None:
    """Edit a saved run so that every record in it claims `by` dB more PSNR than was measured."""
    data = json.loads(path.read_text())
    for bench in data["benchmarks"]:
        bench["extra_info"]["nerfcompress"]["psnr"] += by
    for entry in data.get("nerfcompress", {}).get("records", []):
        entry["record"]["psnr"] += by
    path.write_text(json.dumps(data))


def test_saved_run_check_applies_whatever_fixtures_the_test_uses(suite):
    suite.makepyfile(test_bench=BENCHMARK_MODULE, test_measure=MEASURE_ONLY_MODULE,
                     test_quality=QUALITY_MODULE.replace("@pytest.mark.nerf_gate(psnr_drop=0.3)", ""))
    args = ["--nerf-compressors=fp32", *IGNORE_BENCHMARK_WARNINGS]
    suite.runpytest(*args, "--benchmark-autosave").assert_outcomes(passed=3)
    (saved,) = suite.path.glob(".benchmarks/*/0001_*.json")
    data = json.loads(saved.read_text())
    tests = {entry["test"] for entry in data["nerfcompress"]["records"]}
    assert tests == {"test_measure.py::test_measure[fp32]", "test_quality.py::test_quality[fp32]"}
    suite.runpytest(*args, "--benchmark-compare", "--nerf-missing-baseline=fail").assert_outcomes(passed=3)
    raise_saved_psnr(saved, 1.0)
    result = suite.runpytest(*args, "--benchmark-compare")
    result.assert_outcomes(failed=3)
    result.stdout.re_match_lines([r"fp32: PSNR \d+\.\d\d dB is 1\.00 dB below saved run 0001_\w+\.json "
                                  r"\d+\.\d\d dB \(allowed 0\.10\)$"])


def test_a_suite_without_benchmark_timings_is_saved_and_compared(suite):
    suite.makepyfile(test_measure=MEASURE_ONLY_MODULE)
    args = ["--nerf-compressors=fp32", *IGNORE_BENCHMARK_WARNINGS]
    suite.runpytest(*args, "--benchmark-autosave").assert_outcomes(passed=1)
    (saved,) = suite.path.glob(".benchmarks/*/0001_*.json")
    raise_saved_psnr(saved, 1.0)
    suite.runpytest(*args, "--benchmark-compare", "--nerf-missing-baseline=fail").assert_outcomes(failed=1)


def test_autosave_refuses_a_run_with_failed_gates_unless_accepted(suite):
    suite.makeconftest(CONFTEST_COMPRESSORS)
    suite.makepyfile(test_bench=BENCHMARK_MODULE.replace("def test_compressor", "@pytest.mark.nerf_gate(psnr_drop=0.3)\n"
                                                         "def test_compressor").replace("\n", "\nimport pytest\n", 1))
    args = ["--nerf-compressors=fp32,zero-density", "--benchmark-autosave", *IGNORE_BENCHMARK_WARNINGS]
    result = suite.runpytest(*args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["nerfcompress: this run was not saved as a benchmark baseline: quality gates "
                                 "failed for scene/zero-density; pass --nerf-accept to save it anyway"])
    assert not list(suite.path.glob(".benchmarks/*/*.json"))
    suite.runpytest(*args, "--nerf-accept").assert_outcomes(passed=1, failed=1)
    assert len(list(suite.path.glob(".benchmarks/*/0001_*.json"))) == 1


def test_saved_runs_carry_plain_string_parameters_and_no_machine_paths(suite, tiny):
    suite.makepyfile(test_bench=BENCHMARK_MODULE)
    suite.runpytest("--nerf-compressors=fp32,bf16", "--benchmark-autosave",
                    *IGNORE_BENCHMARK_WARNINGS).assert_outcomes(passed=2)
    (saved,) = suite.path.glob(".benchmarks/*/0001_*.json")
    text = saved.read_text()
    data = json.loads(text)
    params = sorted(bench["params"]["nerf_compressor"] for bench in data["benchmarks"])
    assert params == ["bf16", "fp32"]
    assert "UNSERIALIZABLE" not in text
    assert str(tiny["scene"].parent) not in text and str(suite.path) not in text
    record = data["benchmarks"][0]["extra_info"]["nerfcompress"]
    assert (record["scene"], record["checkpoint"]) == ("scene", "tiny.pt")


def test_history_prints_each_compressor_across_saved_runs_and_plots_them(suite, tmp_path, capsys):
    from nerf_eval.cli import main

    suite.makepyfile(test_bench=BENCHMARK_MODULE, test_measure=MEASURE_ONLY_MODULE)
    for _ in range(2):
        suite.runpytest("--nerf-compressors=fp32,bf16", "--benchmark-autosave", *IGNORE_BENCHMARK_WARNINGS)
    plot = tmp_path / "history.png"
    capsys.readouterr()  # the runs' own output
    assert main(["history", "--storage", str(suite.path / ".benchmarks"), "--plot", str(plot)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["target", "compressor", "run", "PSNR", "dB", "worst", "view", "dB", "size", "latency"]
    rows = [line.split() for line in lines[2:-1]]
    assert [(r[0], r[1], r[2][:4]) for r in rows] == [("scene", "bf16", "0001"), ("scene", "bf16", "0002"),
                                                      ("scene", "fp32", "0001"), ("scene", "fp32", "0002")]
    assert all(float(r[3]) > 30 and r[-1] == "ms" for r in rows)  # PSNR, and latency from the benchmark
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    storage = ["history", "--storage", str(suite.path / ".benchmarks")]
    plot.write_bytes(b"the user's own plot")
    assert main([*storage, "--plot", str(plot)]) == 2
    assert capsys.readouterr().err.strip() == (f"nerf-eval: error: {plot}: file exists; refusing to overwrite it "
                                               "(use --force)")
    assert plot.read_bytes() == b"the user's own plot"
    assert main([*storage, "--plot", str(tmp_path / "notes.md")]) == 2
    assert "the trend plot is a PNG" in capsys.readouterr().err and not (tmp_path / "notes.md").exists()
    assert main([*storage, "--plot", str(plot), "--force"]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.png"]  # no temporary left beside it


KNOWN_FAILURE_CONFTEST = CONFTEST_COMPRESSORS + '''

@pytest.fixture(scope="session")
def nerf_target(nerf_options):
    return pytest_nerfcompress.Target(nerf_options.scene, nerf_options.checkpoint, known_failures={
        "zero-density": "renders nothing", "fixture-*": "declared, but it passes"})
'''


def test_known_failures_run_as_strict_xfail_with_the_measured_figure(suite):
    suite.makeconftest(KNOWN_FAILURE_CONFTEST)
    suite.makepyfile(test_quality=QUALITY_MODULE)
    result = suite.runpytest("-rxX", "--nerf-compressors=fp32,zero-density,fixture-copy")
    result.assert_outcomes(passed=1, xfailed=1, failed=1)
    result.stdout.re_match_lines([
        r"XFAIL test_quality.py::test_quality\[zero-density\] - known failure on scene: renders nothing; "
        r"measured: zero-density: PSNR \d+\.\d\d dB is \d+\.\d\d dB below fp32 \d+\.\d\d dB \(allowed 0\.30\)$"])
    result.stdout.fnmatch_lines(["[[]XPASS(strict)[]] known failure on scene: declared, but it passes"])
    result.stdout.re_match_lines_random([r"zero-density\s.*XFAIL$", r"fixture-copy\s.*FAIL$",
                                         r"^XFAIL zero-density: PSNR"])


def test_an_unknown_device_is_a_one_line_usage_error(suite):
    suite.makepyfile(test_quality=QUALITY_MODULE)
    result = suite.runpytest("--nerf-device=tpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--nerf-device='tpu': expected cpu, cuda or cuda:N*"])


@pytest.mark.skipif(importlib.import_module("torch").cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_device_without_a_gpu_skips_saying_why(suite):
    suite.makepyfile(test_quality=QUALITY_MODULE)
    result = suite.runpytest("-rs", "--nerf-device=cuda", "--nerf-compressors=fp32")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*--nerf-device cuda: this torch * sees no CUDA device here*"])


@pytest.mark.skipif(not importlib.import_module("torch").cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_device_renders_there_and_skips_cpu_only_int8(suite):
    suite.makepyfile(test_quality=QUALITY_MODULE)
    result = suite.runpytest("-rs", "--nerf-device=cuda", "--nerf-compressors=fp32,fp16,int8-ptq-both")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*int8-ptq-both: cannot run on cuda*CPU kernels only*"])


PAIRED_MODULE = '''
def test_with_benchmark(benchmark, nerf_compressed, nerf_evaluator, nerf_gate):
    benchmark.pedantic(nerf_evaluator.render_batch(nerf_compressed), rounds=1, iterations=1)
    record = nerf_evaluator(nerf_compressed, latency=False)
    nerf_gate(record)
    assert record.speedup is not None and record.speedup_spread is not None
    assert record.latency_s is not None and record.reference_latency_s is not None


def test_without_benchmark(nerf_compressed, nerf_evaluator, nerf_options):
    record = nerf_evaluator(nerf_compressed)
    assert record.speedup is not None and record.reference_latency_s is not None
    assert record.latency_rounds == 3 and record.latency_threads == nerf_options.latency_threads
'''


def test_latency_is_timed_interleaved_with_fp32_whatever_fixtures_the_test_uses(suite):
    suite.makepyfile(test_paired=PAIRED_MODULE)
    result = suite.runpytest("--nerf-compressors=fp32", "--nerf-latency-rounds=3")
    result.assert_outcomes(passed=2)
    result = suite.runpytest("--nerf-compressors=fp32", "--nerf-latency-rounds=3", "--nerf-latency-threads=2")
    result.assert_outcomes(passed=2)
    result = suite.runpytest("--nerf-compressors=fp32", "--nerf-latency-threads=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--nerf-latency-threads='-1': must be >= 0*"])


IDENTICAL_FIELDS = ("psnr", "ssim", "flip", "worst_psnr", "worst_view", "sharpness", "depth_error", "size_bytes",
                    "size_fine_bytes", "params", "views", "per_view", "scene", "checkpoint_sha256", "settings",
                    "spec_sha256")


def test_report_and_plugin_write_identical_int8_figures_for_the_same_settings(suite, tiny):
    """`nerf-eval report --compressors int8-ptq-both` and the plugin with --nerf-report-dir, at the same
    views, scale, samples and calibration rays, measure through one core: the same calibration batch,
    the same compressed model, the same figures, bit for bit, and the same measurement spec."""
    from nerf_eval.cli import main

    suite.makepyfile(test_measure=MEASURE_ONLY_MODULE)
    suite.runpytest("--nerf-compressors=int8-ptq-both", "--nerf-views=0,", "--nerf-report-dir=plugin",
                    "-p", "no:benchmark").assert_outcomes(passed=1)
    rows = json.loads((suite.path / "plugin" / "results.json").read_text())["rows"]
    (plugin,) = [row for row in rows if row["name"] == "int8-ptq-both"]
    assert main(["report", "--checkpoint", str(tiny["checkpoint"]), "--scene", str(tiny["scene"]),
                 "--compressors", "int8-ptq-both", "--views", "0", "--scale", "1", "--n-coarse", "8", "--n-fine", "8",
                 "--calibration-rays", "64", "--latency-rays", "32", "--repeats", "1",
                 "--out", str(suite.path / "cli")]) == 0
    report = {row["name"]: row for row in json.loads((suite.path / "cli" / "results.json").read_text())["results"]}
    for ours, theirs in ((plugin["record"], report["int8-ptq-both"]), (plugin["baseline"], report["fp32"])):
        assert {k: ours.get(k) for k in IDENTICAL_FIELDS} == {k: theirs.get(k) for k in IDENTICAL_FIELDS}
        assert ours["psnr"] is not None and ours["size_bytes"] > 0
    settings = plugin["record"]["settings"]
    assert (settings["calibration_rays"], settings["calibration_seed"]) == (64, 0)
    assert plugin["record"]["psnr"] < plugin["baseline"]["psnr"]  # int8 was applied, not skipped


OLD_RECORD_FIELDS = ("name", "target", "scene", "checkpoint", "checkpoint_sha256", "settings", "psnr", "ssim", "flip",
                     "worst_psnr", "worst_view", "depth_error", "sharpness", "size_bytes", "latency_s", "speedup",
                     "speedup_spread", "reference_latency_s")


def test_a_run_saved_by_the_plugin_before_measurement_specs_still_compares(suite):
    """Saved runs written before records named a MeasurementSpec (four settings, no spec_sha256) are
    compared on what they hold: a matching one passes, a better one fails the run."""
    suite.makepyfile(test_bench=BENCHMARK_MODULE, test_measure=MEASURE_ONLY_MODULE)
    args = ["--nerf-compressors=fp32", *IGNORE_BENCHMARK_WARNINGS]
    suite.runpytest(*args, "--benchmark-autosave").assert_outcomes(passed=2)
    (saved,) = suite.path.glob(".benchmarks/*/0001_*.json")
    data = json.loads(saved.read_text())

    def old(record: dict) -> dict:
        out = {k: record[k] for k in OLD_RECORD_FIELDS}
        out["settings"] = {k: record["settings"][k] for k in ("views", "height", "width", "samples")}
        return out

    for bench in data["benchmarks"]:
        bench["extra_info"]["nerfcompress"] = old(bench["extra_info"]["nerfcompress"])
    for entry in data["nerfcompress"]["records"]:
        entry["record"] = old(entry["record"])
    saved.write_text(json.dumps(data))
    suite.runpytest(*args, "--benchmark-compare", "--nerf-missing-baseline=fail").assert_outcomes(passed=2)
    raise_saved_psnr(saved, 1.0)
    suite.runpytest(*args, "--benchmark-compare", "--nerf-missing-baseline=fail").assert_outcomes(failed=2)


PLUGIN_FUZZ_EXAMPLES = int(os.environ.get("NERF_FUZZ_EXAMPLES", "0"))  # 0: CI's fixed examples (see test_fuzz_inputs)
plugin_option_values = st.one_of(
    st.sampled_from(["0", "-1", "1", "2", "nan", "inf", "1e400", "1e300", "", " ", "abc", "2.5", "0.5", "1,2",
                     "8,8", "0,1", "-0", "1_0", "all", "cuda", "warn", "psnr:0.1", "psnr>=1", "psnr_drop=0.1",
                     "size:1.2.3%", "fp32", "*"]),
    st.integers(-3, 24).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=4))


@settings(max_examples=PLUGIN_FUZZ_EXAMPLES or 12, deadline=None, derandomize=not PLUGIN_FUZZ_EXAMPLES,
          database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(option=st.sampled_from(sorted(set(VALUE_OPTIONS) - {"scene", "checkpoint", "compressors"} | set(LIST_OPTIONS))),
       value=plugin_option_values)
def test_any_plugin_option_value_runs_or_is_one_usage_error_line(suite, option, value):
    """Each --nerf-* option (but the target's paths and the compressor names, fuzzed elsewhere) set to a
    drawn value: the tests run (their gates may fail, each in one line) or pytest stops with one usage-error
    line; never a traceback, an internal error or an error inside a test."""
    suite.makepyfile(test_quality=QUALITY_MODULE)
    result = suite.runpytest("--nerf-compressors=fp32", f"--nerf-{option}={value}")
    text = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    assert not re.search(r"^E\s+[\w.]*(Error|Exception)\b", text, re.M), text
    if result.ret == pytest.ExitCode.USAGE_ERROR:
        one_error_line(result)
    else:
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text
        assert set(result.parseoutcomes()) <= {"passed", "failed", "skipped", "warnings", "warning"}, text
