"""What a benchmark measures: one scene and the float checkpoint trained on it.

The `nerf_target` fixture returns the target the options describe; a conftest may override it with
a parametrized session fixture to run the suite on several scenes:

    @pytest.fixture(scope="session", params=["object", "forward"])
    def nerf_target(request):
        return pytest_nerfcompress.Target(request.param, f"checkpoints/{request.param}/checkpoint.pt")

A target may declare compressors known to fail their gates on it (a measured result, not a bug in the
suite); their tests run as strict xfail, so the run stays green while they fail and says so when one
starts to pass:

    Target("forward", "checkpoints/forward/checkpoint.pt",
           known_failures={"prune-activation:0.3": "loses 11.7 dB, past its 1 dB gate"})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Mapping

from pytest_nerfcompress.options import NerfOptions, scene_name


@dataclass(frozen=True)
class Target:
    """A scene spec (built-in name, directory or .npz) and a checkpoint path.

    Relative paths are taken from the rootdir. A missing checkpoint fails the tests that need it,
    unless the target is `optional` (the caller opts in to skipping them until it is trained).
    `scale`, when given, replaces --nerf-scale for this target (e.g. a 200x200 capture measured at the
    pixel count of 100x100 scenes). `known_failures` maps compressor names or globs to the reason they
    are expected to fail here (see the module docstring); it does not make two targets different."""

    scene: str
    checkpoint: str | Path
    name: str = ""
    optional: bool = False
    scale: float | None = None
    known_failures: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name or scene_name(str(self.scene)))
        object.__setattr__(self, "known_failures", dict(self.known_failures or {}))

    @classmethod
    def from_options(cls, options: NerfOptions) -> "Target":
        return cls(options.scene, options.checkpoint)

    def known_failure(self, compressor: str) -> str | None:
        """Why `compressor` is expected to fail on this target (the first matching name or glob), or None."""
        for pattern, reason in self.known_failures.items():
            if fnmatchcase(compressor, pattern):
                return reason
        return None

    def resolved(self, root: Path) -> "Target":
        """The same target with a relative checkpoint (and scene path) made absolute under `root`."""
        ckpt = Path(self.checkpoint)
        scene = self.scene
        if ("/" in scene or Path(scene).suffix) and not Path(scene).is_absolute():
            scene = str(root / scene)
        return Target(scene, ckpt if ckpt.is_absolute() else root / ckpt, self.name, self.optional, self.scale,
                      self.known_failures)
