"""What a benchmark measures: one scene and the float checkpoint trained on it.

The `nerf_target` fixture returns the target the options describe; a conftest may override it with
a parametrized session fixture to run the suite on several scenes:

    @pytest.fixture(scope="session", params=["object", "forward"])
    def nerf_target(request):
        return pytest_nerfcompress.Target(request.param, f"checkpoints/{request.param}/checkpoint.pt")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_nerfcompress.options import NerfOptions, scene_name


@dataclass(frozen=True)
class Target:
    """A scene spec (built-in name, directory or .npz) and a checkpoint path.

    Relative paths are taken from the rootdir. With `optional`, a missing checkpoint skips the tests
    that need it (the default target before its checkpoint is trained) instead of failing them.
    `scale`, when given, replaces --nerf-scale for this target (e.g. a 200x200 capture measured at the
    pixel count of 100x100 scenes)."""

    scene: str
    checkpoint: str | Path
    name: str = ""
    optional: bool = False
    scale: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name or scene_name(str(self.scene)))

    @classmethod
    def from_options(cls, options: NerfOptions) -> "Target":
        return cls(options.scene, options.checkpoint, optional=options.checkpoint_is_default)

    def resolved(self, root: Path) -> "Target":
        """The same target with a relative checkpoint (and scene path) made absolute under `root`."""
        ckpt = Path(self.checkpoint)
        scene = self.scene
        if ("/" in scene or Path(scene).suffix) and not Path(scene).is_absolute():
            scene = str(root / scene)
        return Target(scene, ckpt if ckpt.is_absolute() else root / ckpt, self.name, self.optional, self.scale)
