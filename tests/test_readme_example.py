"""The plugin guide's examples run as written (docs/plugin.md): its three-line benchmark test and its
"add your own compressor" conftest, on the tiny target: both compressors join the suite under their
names, and every test passes its gates."""

import re
from pathlib import Path

from pytest_nerfcompress.testing import tiny_ini, write_tiny_target

pytest_plugins = ["pytester"]

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugin.md"


def guide_block(heading: str, first_line: str) -> str:
    """The first ```python block under `heading` whose first line is `first_line`."""
    section = GUIDE.read_text().split(heading, 1)[1]
    match = re.search(r"```python\n(" + re.escape(first_line) + r"\n.*?)```", section, re.S)
    assert match, f"docs/plugin.md lost its {first_line} example under {heading!r}"
    return match.group(1)


def test_guide_examples_run_as_written(pytester, tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeini(tiny_ini(write_tiny_target(tmp_path / "tiny")))
    pytester.makeconftest(guide_block("## Add your own compressor", "# conftest.py"))
    pytester.makepyfile(test_nerf=guide_block("## Your own benchmark test in three lines", "# test_nerf.py"))
    result = pytester.runpytest("-v", "--nerf-compressors=fp32,round-1/1024*")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines_random(["*test_compressor?fp32? PASSED*", "*test_compressor?round-1/1024? PASSED*",
                                        "*test_compressor?round-1/1024-hook? PASSED*"])
