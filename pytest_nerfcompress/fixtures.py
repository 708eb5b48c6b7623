"""The plugin's fixtures. Expensive ones are session-scoped and backed by one Workbench per target.

Each fixture's docstring is its usage. Modules that import torch are imported inside the fixtures, so
loading the plugin costs nothing to test suites that never use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_nerfcompress.failures import one_line_errors
from pytest_nerfcompress.options import NerfOptions
from pytest_nerfcompress.session import STASH_KEY, NerfSession
from pytest_nerfcompress.target import Target

if TYPE_CHECKING:
    from nerf_eval.model import ModelPair
    from nerf_eval.render import Rays
    from nerf_eval.scenes import Scene
    from pytest_nerfcompress.checks import Evaluator, Gate
    from nerf_eval.measure.workbench import CompressedModel, Workbench


def nerf_session(config: pytest.Config) -> NerfSession:
    return config.stash[STASH_KEY]


@pytest.fixture(scope="session")
def nerf_options(pytestconfig: pytest.Config) -> NerfOptions:
    """The resolved --nerf-* options (command line over ini over defaults)."""
    return nerf_session(pytestconfig).options


@pytest.fixture(scope="session")
def nerf_target(nerf_options: NerfOptions) -> Target:
    """The scene and checkpoint to measure; override it (parametrized) to run several scenes."""
    return Target.from_options(nerf_options)


@pytest.fixture(autouse=True)
def _nerf_known_failure(request: pytest.FixtureRequest) -> None:
    """A test of a compressor that its target declares a known failure (Target.known_failures) runs as
    strict xfail: the run stays green while it fails as declared, and fails if it starts to pass. The
    reason shown gets the measured figure appended (see NerfSession.pytest_runtest_makereport)."""
    if "nerf_compressor" not in request.fixturenames or "nerf_target" not in request.fixturenames:
        return
    choice = getattr(getattr(request.node, "callspec", None), "params", {}).get("nerf_compressor")
    if choice is None:
        return
    target: Target = request.getfixturevalue("nerf_target")
    reason = target.known_failure(str(choice))
    if reason is not None:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=f"known failure on {target.name}: {reason}"))


@pytest.fixture(scope="session")
def nerf_workbench(pytestconfig: pytest.Config, nerf_target: Target) -> "Workbench":
    """The session's cached data and models for `nerf_target` (what the other fixtures read).

    With --nerf-device cuda on a machine without a CUDA device, every test using it skips, saying so."""
    device = nerf_session(pytestconfig).options.device
    if device != "cpu":
        import torch

        if not torch.cuda.is_available():
            pytest.skip(f"--nerf-device {device}: this torch ({torch.__version__}) sees no CUDA device here")
    return nerf_session(pytestconfig).workbench(nerf_target)


@pytest.fixture(scope="session")
def nerf_scene(nerf_workbench: "Workbench") -> "Scene":
    """The target's scene at --nerf-scale: `nerf_scene.images[nerf_workbench.views]`."""
    with one_line_errors():
        return nerf_workbench.scene


@pytest.fixture(scope="session")
def nerf_pair(nerf_workbench: "Workbench") -> "ModelPair":
    """The fp32 coarse/fine pair loaded from the target's checkpoint (do not modify it)."""
    with one_line_errors():
        return nerf_workbench.pair


@pytest.fixture(scope="session")
def nerf_calibration_rays(nerf_workbench: "Workbench") -> "Rays":
    """--nerf-calibration-rays rays from training views (seeded), as compressors receive them."""
    with one_line_errors():
        return nerf_workbench.calibration_rays


@pytest.fixture(scope="session")
def nerf_latency_rays(nerf_workbench: "Workbench") -> "Rays":
    """The fixed batch of --nerf-latency-rays test-view rays that every latency is measured on."""
    with one_line_errors():
        return nerf_workbench.latency_rays


@pytest.fixture(scope="session")
def nerf_compressor(request: pytest.FixtureRequest) -> Any:
    """One compressor per test, parametrized over --nerf-compressors (default: all registered);
    the test id is the compressor's name."""
    from pytest_nerfcompress.registry import Choice

    session = nerf_session(request.config)
    choice = getattr(request, "param", None)
    if choice is None:
        pytest.fail("nerf_compressor: not parametrized (the plugin parametrizes it; check that the test "
                    "module is collected with the plugin loaded)", pytrace=False)
    with one_line_errors():
        if not isinstance(choice, Choice):  # a name given with @pytest.mark.parametrize(..., indirect=True)
            _, registry = session.registries().for_path(None, request.config.hook)
            choice = Choice(str(choice), "", registry)
        return session.registries().build(choice, request)


@pytest.fixture(scope="session")
def nerf_compressed(pytestconfig: pytest.Config, nerf_compressor: Any, nerf_workbench: "Workbench",
                    nerf_options: NerfOptions) -> "CompressedModel":
    """The compressor's output on `nerf_pair` (built once per compressor per session):
    `.name`, `.pair` (a ModelPair), `.gates`, `.compress_seconds`.

    With --nerf-device cuda the model is compressed on the CPU and rendered on the GPU; one whose kernels
    run on the CPU only (torch's quantized int8) is skipped, saying so.

    A model that computes in a half dtype this CPU only emulates (bf16 or fp16 without native matmuls,
    5 to 50 times slower than fp32) is skipped with the measured rate, unless --nerf-compressors names it."""
    from nerf_eval.errors import NerfEvalError
    from nerf_eval.hardware import slow_dtype_note, slow_dtypes

    name = nerf_session(pytestconfig).registries().name_of(nerf_compressor)
    with one_line_errors(nerf_workbench.target.name):
        model = nerf_workbench.compressed(name, nerf_compressor)
    if nerf_options.device != "cpu":
        try:
            nerf_workbench.on_device(model.pair)
        except NerfEvalError as e:
            pytest.skip(f"{name}: {e}")
    slow = slow_dtypes(model.pair) if nerf_options.device == "cpu" else []
    if slow and name not in nerf_options.compressors:
        pytest.skip(f"{name}: {slow_dtype_note(slow)}; name it in --nerf-compressors to measure it anyway")
    return model


@pytest.fixture
def nerf_evaluator(request: pytest.FixtureRequest, nerf_workbench: "Workbench") -> "Evaluator":
    """`record = nerf_evaluator(nerf_compressed)` measures PSNR, SSIM, FLIP, worst view, depth error,
    size and latency (`latency=False` to skip timing); `nerf_evaluator.baseline` is fp32's record."""
    from pytest_nerfcompress.checks import Evaluator

    return Evaluator(request, nerf_workbench)


@pytest.fixture
def nerf_gate(request: pytest.FixtureRequest, nerf_evaluator: "Evaluator") -> "Gate":
    """`nerf_gate(record)` fails the test if a gate is violated; gates come from --nerf-gate /
    --nerf-max-psnr-drop, the compressor's registration, `@pytest.mark.nerf_gate(...)` and the call
    (`nerf_gate(record, "psnr>=30", psnr_drop=0.3)`), later ones overriding earlier ones."""
    from pytest_nerfcompress.checks import Gate

    return Gate(request, nerf_evaluator, nerf_session(request.config))
