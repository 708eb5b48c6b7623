"""Scene spec strings: loader settings after a colon reach every loader, typed once, with one-line errors."""

import numpy as np
import pytest

from nerf_eval.errors import SceneError
from nerf_eval.scenes import load_scene, parse_scene_spec
from test_loaders import forward_poses, write_llff, write_rgba_blender


def test_llff_settings_are_typed_from_the_loader_signature(tmp_path):
    write_llff(tmp_path, forward_poses(6), size=16)
    spec = parse_scene_spec(f"{tmp_path}:factor=2,ndc=false,llffhold=3,bd_factor=none")
    assert spec.kind == "llff" and spec.target == str(tmp_path)
    assert spec.options == {"factor": 2, "ndc": False, "llffhold": 3, "bd_factor": None}
    scene = spec.load()
    assert (scene.width, scene.height) == (8, 8) and not scene.ndc
    assert scene.split("test") == [0, 3]


def test_the_spec_string_reaches_load_scene_like_keywords(tmp_path):
    write_llff(tmp_path, forward_poses(4))
    by_spec = load_scene(f"{tmp_path}:ndc=0")
    by_kwarg = load_scene(tmp_path, ndc=False)
    assert by_spec.near == by_kwarg.near and not by_spec.ndc


def test_blender_and_builtin_settings(tmp_path):
    write_rgba_blender(tmp_path)
    assert not load_scene(f"{tmp_path}:white_bkgd=false").white_bkgd
    scene = load_scene("object:size=20,seed=1")
    assert (scene.width, scene.height) == (20, 20) and "seed=1" in scene.source


def test_a_path_without_settings_keeps_its_colons(tmp_path):
    odd = tmp_path / "a:b"
    write_rgba_blender(odd)
    assert parse_scene_spec(str(odd)).target == str(odd)


@pytest.mark.parametrize("suffix, message", [
    (":foo=1", "unknown llff scene setting 'foo'; known: bd_factor, factor, llffhold, ndc, recenter, spherify, val"),
    (":factor=two", "scene setting factor='two' is not an int"),
    (":ndc=maybe", "scene setting ndc='maybe' is not true/false"),
    (":factor=2,factor=4", "scene setting 'factor' given twice"),
])
def test_bad_settings_are_one_line_errors(tmp_path, suffix, message):
    write_llff(tmp_path, forward_poses(3))
    with pytest.raises(SceneError) as err:
        load_scene(f"{tmp_path}{suffix}")
    assert str(err.value) == f"{tmp_path}{suffix}: {message}"


def test_a_setting_given_twice_ways_is_refused(tmp_path):
    write_llff(tmp_path, forward_poses(3))
    with pytest.raises(SceneError, match="given in the spec and by the caller"):
        load_scene(f"{tmp_path}:factor=1", factor=2)


def test_unknown_scene_names_stay_one_line():
    with pytest.raises(SceneError, match="nope: unknown scene"):
        parse_scene_spec("nope")
    with pytest.raises(SceneError, match=r"'obj\\nect': scene names and paths with line breaks") as e:
        parse_scene_spec("obj\nect")
    assert "\n" not in str(e.value)


def inward_poses(n: int, centre: np.ndarray, radius: float) -> np.ndarray:
    """Cameras on a ring above `centre`, each looking at it (OpenGL: the camera looks down its -z)."""
    out = []
    for k in range(n):
        a = 2 * np.pi * k / n
        pos = centre + radius * np.array([np.cos(a), np.sin(a), 0.5])
        back = (pos - centre) / np.linalg.norm(pos - centre)
        right = np.cross([0.0, 0.0, 1.0], back)
        right /= np.linalg.norm(right)
        m = np.eye(4)
        m[:3, :4] = np.stack([right, np.cross(back, right), back, pos], 1)
        out.append(m)
    return np.stack(out)


def test_spherify_centres_inward_cameras_at_unit_distance(tmp_path):
    write_llff(tmp_path, inward_poses(8, np.array([3.0, -2.0, 1.0]), 5.0))
    scene = load_scene(f"{tmp_path}:spherify=true,ndc=false,factor=1,bd_factor=none,recenter=false")
    pos = scene.poses[:, :3, 3].double().numpy()
    np.testing.assert_allclose(np.sqrt((pos ** 2).sum(-1).mean()), 1.0, atol=1e-6)
    # every camera still looks at the (new) origin: its back axis is along its position
    back = scene.poses[:, :3, 2].double().numpy()
    np.testing.assert_allclose((back * pos).sum(-1) / np.linalg.norm(pos, axis=-1), 1.0, atol=1e-5)
    assert scene.near > 0 and not scene.ndc and scene.meta["spherify"]


def test_spherify_needs_ndc_off(tmp_path):
    write_llff(tmp_path, inward_poses(4, np.zeros(3), 2.0))
    with pytest.raises(SceneError, match="spherify .* renders without NDC; add ndc=false"):
        load_scene(f"{tmp_path}:spherify=1")


@pytest.mark.parametrize("kind, label", [("llff", "LLFF"), ("blender", "Blender"), ("npz", ".npz"),
                                         ("builtin", "built-in")])
def test_the_scene_help_names_every_loader_setting(kind, label):
    import re

    from nerf_eval.cli.arguments import SCENE_HELP
    from nerf_eval.scenes import SceneSpec, _setting_types

    listed = re.search(re.escape(label) + r": ([^;)]*)", SCENE_HELP).group(1)
    assert set(_setting_types(SceneSpec(kind, "x").loader())) <= {s.strip() for s in listed.split(",")}
