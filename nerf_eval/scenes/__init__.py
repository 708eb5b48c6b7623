"""Scene loading by one string: a built-in name, a Blender or LLFF directory, or an `.npz` file,
optionally followed by loader settings, e.g. `data/flower:factor=4,llffhold=8` or `object:size=50`.

The settings ride in the same string as the scene so that every place that takes a scene (each
`nerf-eval` command's `--scene`, the plugin's `--nerf-scene`, reports and model cards that record it)
reaches them the same way, and a recorded spec reloads the same scene.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nerf_eval.errors import SceneError
from nerf_eval.scenes.procedural import BUILTIN_SCENES, make_scene
from nerf_eval.scenes.scene import Scene

__all__ = ["Scene", "SceneSpec", "load_scene", "parse_scene_spec", "BUILTIN_SCENES", "make_scene"]

_OPTIONS = re.compile(r"^[A-Za-z_]\w*=[^,=]*(,[A-Za-z_]\w*=[^,=]*)*$")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class SceneSpec:
    """A parsed scene string: which loader, the name or path it reads, and its typed settings."""

    kind: str  # builtin, blender, llff or npz
    target: str
    options: dict[str, Any] = field(default_factory=dict)

    def loader(self) -> Callable[..., Any]:
        if self.kind == "builtin":
            return make_scene
        if self.kind == "npz":
            from nerf_eval.scenes.npz import load_npz

            return load_npz
        if self.kind == "blender":
            from nerf_eval.scenes.blender import load_blender

            return load_blender
        from nerf_eval.scenes.llff import load_llff

        return load_llff

    def load(self) -> Scene:
        out = self.loader()(self.target, **self.options)
        return out[0] if self.kind == "builtin" else out


def _split(spec: str) -> tuple[str, str]:
    """`base:k=v,...` -> (base, "k=v,..."); a colon not followed by settings (a Windows drive) stays."""
    base, sep, rest = spec.rpartition(":")
    if sep and base and _OPTIONS.match(rest):
        return base, rest
    return spec, ""


def _kind(spec: str, base: str) -> str:
    if base in BUILTIN_SCENES:
        return "builtin"
    path = Path(base)
    if path.suffix == ".npz":
        return "npz"
    if path.is_dir():
        if (path / "transforms_train.json").exists():
            return "blender"
        if (path / "poses_bounds.npy").exists():
            return "llff"
        raise SceneError(f"{path}: neither transforms_train.json (Blender) nor poses_bounds.npy (LLFF) found")
    if not path.exists() and ("/" in base or path.suffix):
        raise SceneError(f"{path}: scene file or directory not found")
    raise SceneError(f"{spec}: unknown scene; give a built-in name ({', '.join(sorted(BUILTIN_SCENES))}), "
                     "a Blender/LLFF directory or an .npz file")


def _setting_types(loader: Callable[..., Any]) -> dict[str, tuple[type, bool]]:
    """Each keyword parameter of a loader with a default: (bool, int, float or str, whether None is allowed)."""
    hints = typing.get_type_hints(loader)
    out = {}
    for name, param in inspect.signature(loader).parameters.items():
        if param.default is inspect.Parameter.empty:
            continue
        hint = hints.get(name, type(param.default))
        args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        base = next((t for t in (bool, int, float, str) if t in args), str)
        out[name] = (base, type(None) in args)
    return out


def _coerce(spec: str, key: str, text: str, kind: tuple[type, bool]) -> Any:
    """A setting's text as its loader parameter's type ('none' where None is allowed)."""
    base, optional = kind
    low = text.strip().lower()
    if optional and low == "none":
        return None
    try:
        if base is bool:
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
            raise ValueError
        return base(low) if base is not str else text
    except ValueError:
        want = "true/false" if base is bool else f"an {base.__name__}" if base is int else f"a {base.__name__}"
        raise SceneError(f"{spec}: scene setting {key}={text!r} is not {want}" + (" or none" if optional else "")) from None


def parse_scene_spec(spec: str | Path, **overrides: Any) -> SceneSpec:
    """Parse `base[:key=value,...]` once into a SceneSpec with settings typed from the loader's signature.

    Keyword `overrides` (already typed) are merged in; a key given both ways is an error. Unknown keys
    are refused with the loader's valid ones listed.
    """
    s = str(spec)
    if not s.isprintable():  # the scene is named in every one-line error, which must stay one line
        raise SceneError(f"{s!r}: scene names and paths with line breaks or other control characters are not "
                         "supported")
    base, settings = _split(s)
    kind = _kind(s, base)
    probe = SceneSpec(kind, base)
    params = _setting_types(probe.loader())
    options: dict[str, Any] = {}
    for item in filter(None, settings.split(",")):
        key, _, text = item.partition("=")
        if key not in params:
            raise SceneError(f"{s}: unknown {kind} scene setting {key!r}; known: {', '.join(sorted(params))}")
        if key in options:
            raise SceneError(f"{s}: scene setting {key!r} given twice")
        options[key] = _coerce(s, key, text, params[key])
    for key, value in overrides.items():
        if key in options:
            raise SceneError(f"{s}: scene setting {key!r} given in the spec and by the caller")
        options[key] = value
    return SceneSpec(kind, base, options)


def load_scene(spec: str | Path, **kwargs: Any) -> Scene:
    """Load a scene from its spec string (see the module docstring); keyword arguments go to the loader
    (e.g. half_res, factor, near, far) as if they were in the spec."""
    return parse_scene_spec(spec, **kwargs).load()
