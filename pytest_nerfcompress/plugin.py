"""pytest hooks of the nerfcompress plugin: options, markers, the hookspec, parametrization of
`nerf_compressor`, and the session object that gathers results for the summary table.

Loaded through the `pytest11` entry point (`-p no:nerfcompress` disables it). Nothing here imports
torch; the fixtures do on first use.
"""

from __future__ import annotations

import pytest

from pytest_nerfcompress import hookspecs
from pytest_nerfcompress.fixtures import (_nerf_known_failure, nerf_calibration_rays, nerf_compressed, nerf_compressor,  # noqa: F401
                                          nerf_evaluator, nerf_gate, nerf_latency_rays, nerf_options,
                                          nerf_pair, nerf_scene, nerf_session, nerf_target, nerf_workbench)
from pytest_nerfcompress.options import add_options
from pytest_nerfcompress.session import STASH_KEY, NerfSession

MARKER = ("nerf_gate(*limits, **thresholds): quality gates for this test, e.g. "
          "nerf_gate('psnr>=30', 'size<=2MB', psnr_drop=0.3, worst_psnr_drop=0.5, ssim_drop=0.01, "
          "size_ratio=0.5, min_speedup=1.5); they override --nerf-gate and registered gates")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    session = NerfSession(config)
    config.stash[STASH_KEY] = session
    config.pluginmanager.register(session, "nerfcompress-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(STASH_KEY, None)
    if session is not None and config.pluginmanager.is_registered(session):
        config.pluginmanager.unregister(session)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `nerf_compressor` over the selected compressors, ids = their names."""
    if "nerf_compressor" not in metafunc.fixturenames:
        return
    if any("nerf_compressor" in str(m.args[0] if m.args else "")
           for m in metafunc.definition.iter_markers("parametrize")):
        return
    from nerf_eval.errors import NerfEvalError

    session = nerf_session(metafunc.config)
    try:
        choices = session.choices(metafunc.definition.path, metafunc.definition.ihook)
    except NerfEvalError as e:
        error = f"nerfcompress: {e}"
    else:
        error = None
    if error is not None:  # outside the except block, so pytest prints this one line and no chain
        pytest.fail(error, pytrace=False)
    metafunc.parametrize("nerf_compressor", choices, ids=[c.name for c in choices], indirect=True,
                         scope="session")
