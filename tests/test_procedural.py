"""Built-in analytic scenes: deterministic, exact depth, and a lossless trip through the Blender layout."""

import json
import math

import numpy as np
import pytest
import torch

from nerf_eval.errors import SceneError
from nerf_eval.rays import get_rays
from nerf_eval.scenes.blender import load_blender, write_blender
from nerf_eval.scenes.procedural import BUILTIN_SCENES, Sphere, make_scene

SIZE = 12


@pytest.fixture(scope="module", params=sorted(BUILTIN_SCENES))
def built(request):
    return make_scene(request.param, seed=0, size=SIZE)


def sphere_hits(sphere: Sphere, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """First positive root of |o + t d - c| = r, in float64, inf where the ray misses (written independently)."""
    o, d, c = o.double(), d.double(), torch.tensor(sphere.center, dtype=torch.float64)
    oc = o - c
    a, b, cc = (d * d).sum(-1), 2 * (oc * d).sum(-1), (oc * oc).sum(-1) - sphere.radius ** 2
    disc = b * b - 4 * a * cc
    root = torch.sqrt(disc.clamp(min=0))
    t0, t1 = (-b - root) / (2 * a), (-b + root) / (2 * a)
    t = torch.where(t0 > 0, t0, t1)
    return torch.where((disc >= 0) & (t > 0), t, torch.full_like(t, math.inf))


def test_same_seed_gives_the_same_scene():
    a, _ = make_scene("object", seed=7, size=8)
    b, _ = make_scene("object", seed=7, size=8)
    assert torch.equal(a.images, b.images) and torch.equal(a.depths, b.depths) and torch.equal(a.poses, b.poses)


def test_different_seeds_differ():
    a, _ = make_scene("object", seed=0, size=8)
    b, _ = make_scene("object", seed=1, size=8)
    assert not torch.equal(a.images, b.images)


def test_shapes_splits_and_range(built):
    scene, _ = built
    n = len(scene.poses)
    assert scene.images.shape == (n, SIZE, SIZE, 3) and scene.depths.shape == (n, SIZE, SIZE)
    assert scene.images.min() >= 0 and scene.images.max() <= 1
    all_views = sorted(scene.split("train") + scene.split("val") + scene.split("test"))
    assert all_views == list(range(n))
    assert not set(scene.split("test")) & set(scene.split("train"))


def test_depth_points_lie_on_a_surface(built):
    scene, analytic = built
    for i in range(0, len(scene.poses), 7):
        o, d = get_rays(SIZE, SIZE, scene.focal, scene.poses[i])
        t = scene.depths[i]
        hit = torch.isfinite(t)
        assert hit.any()
        p = o[hit] + t[hit, None] * d[hit]
        sdf = torch.stack([prim.sdf(p) for prim in analytic.primitives], -1).abs().amin(-1)
        assert sdf.max() < 1e-3


def test_sphere_depth_satisfies_the_sphere_equation(built):
    """Where a sphere is the nearest hit, |o + t d - c| = r; no sphere is ever in front of the depth."""
    scene, analytic = built
    spheres = [p for p in analytic.primitives if isinstance(p, Sphere)]
    on_sphere = 0
    for i in range(0, len(scene.poses), 5):
        o, d = get_rays(SIZE, SIZE, scene.focal, scene.poses[i])
        t = scene.depths[i].double()
        for s in spheres:
            ts = sphere_hits(s, o, d)
            assert (t <= ts + 1e-3).all()  # float32 roots of grazing rays are off by ~1e-4
            mine = torch.isfinite(ts) & ((t - ts).abs() < 1e-4)
            p = o.double()[mine] + t[mine, None] * d.double()[mine]
            residual = ((p - torch.tensor(s.center, dtype=torch.float64)).norm(dim=-1) - s.radius).abs()
            assert not mine.any() or residual.max() < 1e-4
            on_sphere += int(mine.sum())
    assert on_sphere > 0


def test_background_pixels_are_background_colour(built):
    scene, analytic = built
    miss = ~torch.isfinite(scene.depths)
    if miss.any():
        torch.testing.assert_close(scene.images[miss], torch.tensor(analytic.background).expand(int(miss.sum()), 3))


def test_written_poses_match_the_transforms_json(built, tmp_path):
    scene, _ = built
    write_blender(scene, tmp_path)
    for split, idx in scene.splits.items():
        doc = json.loads((tmp_path / f"transforms_{split}.json").read_text())
        assert len(doc["frames"]) == len(idx)
        for frame, i in zip(doc["frames"], idx):
            assert torch.equal(torch.tensor(frame["transform_matrix"], dtype=torch.float32), scene.poses[i])
        angle = 2 * math.atan(0.5 * scene.width / scene.focal)
        assert doc["camera_angle_x"] == pytest.approx(angle)


def test_round_trip_through_load_blender(built, tmp_path):
    scene, _ = built
    back = load_blender(write_blender(scene, tmp_path))
    order = scene.split("train") + scene.split("val") + scene.split("test")
    assert back.split("train") == list(range(len(scene.split("train"))))
    assert torch.equal(back.poses, scene.poses[order])
    assert (back.images - scene.images[order]).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.equal(back.depths, scene.depths[order])
    assert back.focal == pytest.approx(scene.focal, rel=1e-9)
    assert (back.near, back.far, back.white_bkgd) == (scene.near, scene.far, scene.white_bkgd)


def test_unknown_name():
    with pytest.raises(KeyError, match="unknown built-in scene"):
        make_scene("teapot")


def test_rescaled_scene_keeps_the_field_of_view():
    scene, _ = make_scene("object", size=16)
    half = scene.rescaled(0.5)
    assert half.images.shape[1:3] == (8, 8)
    assert half.width / half.focal == pytest.approx(scene.width / scene.focal)
    assert np.isfinite(half.depths.numpy()).any()


@pytest.mark.parametrize("options, message", [
    ({"size": 0}, "size must be an integer from 4 to 1024 pixels, got 0"),
    ({"size": -1}, "got -1"),
    ({"size": 3}, "got 3"),
    ({"size": 5000}, "got 5000"),
    ({"seed": -5}, "seed must be a non-negative integer, got -5"),
])
def test_built_in_scene_settings_out_of_range_are_one_line_errors(options, message):
    with pytest.raises(SceneError, match=message):
        make_scene("object", **options)
