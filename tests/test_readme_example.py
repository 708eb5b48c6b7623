"""The README's "add your own compressor" conftest runs as written: both of its compressors join the
suite under their names and pass their gates on the tiny target."""

import re
from pathlib import Path

from pytest_nerfcompress.testing import tiny_ini, write_tiny_target

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[1] / "README.md"
TEST_MODULE = '''
def test_quality(nerf_compressed, nerf_evaluator, nerf_gate):
    nerf_gate(nerf_evaluator(nerf_compressed, latency=False))
'''


def readme_conftest() -> str:
    section = README.read_text().split("### Add your own compressor", 1)[1]
    match = re.search(r"```python\n(# conftest\.py\n.*?)```", section, re.S)
    assert match, "README lost its conftest.py example"
    return match.group(1)


def test_readme_conftest_example_runs(pytester, tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeini(tiny_ini(write_tiny_target(tmp_path / "tiny")))
    pytester.makeconftest(readme_conftest())
    pytester.makepyfile(test_example=TEST_MODULE)
    result = pytester.runpytest("-v", "--nerf-compressors=round-1/1024*")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(["*test_quality?round-1/1024? PASSED*", "*test_quality?round-1/1024-hook? PASSED*"])
