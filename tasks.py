#!/usr/bin/env python3
"""Set up and run the project with nothing but Python: `python3 tasks.py test|bench [pytest args]`.

Creates `.venv` on first use, installs the project with the CPU torch wheel pinned by constraints.txt
(an unpinned torch would pull a multi-GB CUDA build), and re-installs only when pyproject.toml or
constraints.txt change. Then runs pytest on tests/ or benchmarks/ with the given extra arguments.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".nerfcompress-installed"


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_env() -> None:
    """Create the virtual environment and install the project into it when needed."""
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("installing nerfcompress and its dependencies (CPU torch wheel)", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
                    "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(_fingerprint())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("test", "bench"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    ensure_env()
    target = "tests" if argv[0] == "test" else "benchmarks"
    # bench: the short summary lists skips and expected failures with their reasons (a known failure's
    # reason holds the figure measured), not only failures; a later -r in the extra arguments wins.
    report = ["-rfEsxX"] if argv[0] == "bench" else []
    cmd = [str(PY), "-m", "pytest", target, *report, *argv[1:]]
    print("+", " ".join(cmd[2:]), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
