"""Scene loading by one string: a built-in name, a Blender or LLFF directory, or an `.npz` file."""

from __future__ import annotations

from pathlib import Path

from nerf_eval.errors import SceneError
from nerf_eval.scenes.procedural import BUILTIN_SCENES, make_scene
from nerf_eval.scenes.scene import Scene

__all__ = ["Scene", "load_scene", "BUILTIN_SCENES", "make_scene"]


def load_scene(spec: str | Path, **kwargs) -> Scene:
    """Load a scene. `spec` is a built-in name (see BUILTIN_SCENES), a directory with
    `transforms_train.json` (Blender) or `poses_bounds.npy` (LLFF), or an `.npz` file.
    Keyword arguments go to the loader (e.g. half_res, factor, near, far)."""
    s = str(spec)
    if s in BUILTIN_SCENES:
        return make_scene(s, **kwargs)[0]
    path = Path(s)
    if path.suffix == ".npz":
        from nerf_eval.scenes.npz import load_npz

        return load_npz(path, **kwargs)
    if path.is_dir():
        if (path / "transforms_train.json").exists():
            from nerf_eval.scenes.blender import load_blender

            return load_blender(path, **kwargs)
        if (path / "poses_bounds.npy").exists():
            from nerf_eval.scenes.llff import load_llff

            return load_llff(path, **kwargs)
        raise SceneError(f"{path}: neither transforms_train.json (Blender) nor poses_bounds.npy (LLFF) found")
    if not path.exists() and ("/" in s or path.suffix):
        raise SceneError(f"{path}: scene file or directory not found")
    raise SceneError(f"{s}: unknown scene; give a built-in name ({', '.join(sorted(BUILTIN_SCENES))}), "
                     "a Blender/LLFF directory or an .npz file")
