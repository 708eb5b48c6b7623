"""How the plugin words a missing checkpoint: the option that names one and the command that trains it.

Whether a checkpoint belongs to its scene is checked by `nerf_eval.measure.provenance`.
"""

from __future__ import annotations

from pathlib import Path

from pytest_nerfcompress.options import NerfOptions


def missing_checkpoint_message(path: Path, scene: str, options: NerfOptions) -> str:
    """One line for a checkpoint that does not exist, saying how to get one."""
    if options.checkpoint_is_default and Path(options.checkpoint) == path:
        return (f"{path}: checkpoint not found (the default for scene {scene!r}); pass --nerf-checkpoint=PATH "
                f"or train one with `nerf-eval train --scene {scene} --out {path.parent}`")
    return f"{path}: checkpoint not found"
