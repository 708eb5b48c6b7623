"""Scene loaders (Blender, LLFF, tiny-NeRF .npz) on small files written here, and their one-line errors."""

import io
import json
import math
import warnings
import zipfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from nerf_eval.errors import SceneError
from nerf_eval.metrics import psnr
from nerf_eval.scenes import load_scene
from nerf_eval.scenes.blender import load_blender, write_blender
from nerf_eval.scenes.llff import load_llff, poses_avg
from nerf_eval.scenes.npz import load_npz
from nerf_eval.scenes.procedural import make_scene

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# --- Blender ---------------------------------------------------------------------------------------

def write_rgba_blender(root: Path, size: int = 4, n: int = 2) -> None:
    """A minimal Blender scene: RGBA PNGs whose left half is transparent, identity-ish poses."""
    (root / "train").mkdir(parents=True)
    frames = []
    for k in range(n):
        img = np.zeros((size, size, 4), np.uint8)
        img[..., 0] = 200
        img[:, size // 2:, 3] = 255
        iio.imwrite(root / "train" / f"r_{k}.png", img)
        pose = np.eye(4)
        pose[2, 3] = 4.0 + k
        frames.append({"file_path": f"./train/r_{k}", "transform_matrix": pose.tolist()})
    (root / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.69, "frames": frames}))


def test_blender_composites_alpha_on_white(tmp_path):
    write_rgba_blender(tmp_path)
    scene = load_blender(tmp_path)
    assert scene.images.shape == (2, 4, 4, 3)
    torch.testing.assert_close(scene.images[0, :, :2], torch.ones(4, 2, 3))
    torch.testing.assert_close(scene.images[0, :, 2:, 0], torch.full((4, 2), 200 / 255))
    assert scene.focal == pytest.approx(0.5 * 4 / math.tan(0.5 * 0.69))
    assert (scene.near, scene.far, scene.white_bkgd) == (2.0, 6.0, True)
    assert scene.splits == {"train": [0, 1]}
    assert scene.poses[1, 2, 3] == 5.0


def test_blender_on_black(tmp_path):
    write_rgba_blender(tmp_path)
    scene = load_blender(tmp_path, white_bkgd=False)
    torch.testing.assert_close(scene.images[0, :, :2], torch.zeros(4, 2, 3))


def test_blender_half_res_and_bounds_override(tmp_path):
    write_rgba_blender(tmp_path, size=8)
    full, half = load_blender(tmp_path), load_blender(tmp_path, half_res=True, near=1.0, far=3.0)
    assert half.images.shape == (2, 4, 4, 3)
    assert half.focal == pytest.approx(full.focal / 2)
    assert (half.near, half.far) == (1.0, 3.0)


def test_blender_through_load_scene(tmp_path):
    write_blender(make_scene("object", size=8)[0], tmp_path / "obj")
    scene = load_scene(tmp_path / "obj")
    assert scene.depths is not None and scene.images.shape[1:] == (8, 8, 3)


def test_blender_missing_dir(tmp_path):
    with pytest.raises(SceneError, match="not found") as e:
        load_blender(tmp_path / "absent")
    one_line(e)


def test_blender_without_transforms(tmp_path):
    with pytest.raises(SceneError, match="transforms_train.json"):
        load_blender(tmp_path)


def test_blender_malformed_json(tmp_path):
    write_rgba_blender(tmp_path)
    (tmp_path / "transforms_train.json").write_text('{"camera_angle_x": 0.69,\n "frames": [}')
    with pytest.raises(SceneError, match=r"transforms_train\.json: malformed JSON at line 2") as e:
        load_blender(tmp_path)
    one_line(e)


@pytest.mark.parametrize("doc, pattern", [
    ({"frames": []}, "missing 'camera_angle_x'"),
    ({"camera_angle_x": 0.5, "frames": [{"file_path": "./train/r_0"}]}, "frame 0 lacks"),
    ({"camera_angle_x": 0.5, "frames": [{"file_path": "./train/r_0", "transform_matrix": [[1, 0], [0, 1]]}]},
     "not a finite 4x4"),
])
def test_blender_missing_keys(tmp_path, doc, pattern):
    write_rgba_blender(tmp_path)
    (tmp_path / "transforms_train.json").write_text(json.dumps(doc))
    with pytest.raises(SceneError, match=pattern) as e:
        load_blender(tmp_path)
    assert "transforms_train.json" in one_line(e)


def test_blender_missing_image(tmp_path):
    write_rgba_blender(tmp_path)
    (tmp_path / "train" / "r_1.png").unlink()
    with pytest.raises(SceneError, match=r"r_1\.png: image file not found") as e:
        load_blender(tmp_path)
    one_line(e)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio tries its legacy plugins on the junk
def test_blender_undecodable_image(tmp_path):
    write_rgba_blender(tmp_path)
    (tmp_path / "train" / "r_1.png").write_bytes(b"not a png")
    with pytest.raises(SceneError, match=r"r_1\.png: cannot decode") as e:
        load_blender(tmp_path)
    one_line(e)


def test_blender_mixed_sizes(tmp_path):
    write_rgba_blender(tmp_path)
    iio.imwrite(tmp_path / "train" / "r_1.png", np.zeros((6, 6, 4), np.uint8))
    with pytest.raises(SceneError, match=r"r_1\.png: image is 6x6, others are 4x4") as e:
        load_blender(tmp_path)
    one_line(e)


# --- LLFF ------------------------------------------------------------------------------------------

def forward_poses(n: int) -> np.ndarray:
    """Forward-facing OpenGL camera-to-world matrices: small rotations, cameras spread on a plane."""
    rng = np.random.default_rng(0)
    poses = []
    for k in range(n):
        a, b = rng.uniform(-0.1, 0.1, 2)
        rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
        m = np.eye(4)
        m[:3, :3] = rx @ ry
        m[:3, 3] = [rng.uniform(-1, 1), rng.uniform(-1, 1), 3.0 + rng.uniform(-0.2, 0.2)]
        poses.append(m)
    return np.stack(poses)


def write_llff(root: Path, c2w: np.ndarray, size: int = 16, focal: float = 20.0, folder: str = "images",
               bounds=(2.0, 10.0), seed: int = 0) -> np.ndarray:
    """Write poses_bounds.npy (LLFF's [down, right, back] order) and PNG images; returns the images."""
    (root / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    for m in c2w:
        r, t = m[:3, :3], m[:3, 3]
        mat = np.stack([-r[:, 1], r[:, 0], r[:, 2], t, [size, size, focal]], 1)
        rows.append(np.concatenate([mat.ravel(), bounds]))
    np.save(root / "poses_bounds.npy", np.array(rows))
    images = np.random.default_rng(seed).integers(0, 256, (len(c2w), size, size, 3), dtype=np.uint8)
    for k, img in enumerate(images):
        iio.imwrite(root / folder / f"IMG_{k:03d}.png", img)
    return images


def test_llff_axes_become_opengl(tmp_path):
    c2w = forward_poses(4)
    images = write_llff(tmp_path, c2w)
    scene = load_llff(tmp_path, factor=1, recenter=False, bd_factor=None, ndc=False)
    torch.testing.assert_close(scene.poses, torch.tensor(c2w, dtype=torch.float32))
    torch.testing.assert_close(scene.images, torch.tensor(images / 255.0, dtype=torch.float32))
    assert scene.focal == 20.0 and not scene.white_bkgd
    assert (scene.near, scene.far) == pytest.approx((2.0 * 0.9, 10.0))


def test_llff_bounds_are_scaled_and_poses_recentred(tmp_path):
    c2w = forward_poses(6)
    write_llff(tmp_path, c2w)
    scene = load_llff(tmp_path, factor=1, ndc=False)
    sc = 1.0 / (2.0 * 0.75)
    assert (scene.near, scene.far) == pytest.approx((0.9 / 0.75, 10.0 * sc))
    p = scene.poses.double().numpy()
    np.testing.assert_allclose(poses_avg(p[:, :3]), np.eye(4)[:3], atol=1e-5)
    # recentring is rigid: the relative pose of two cameras keeps its rotation, translation scales by sc
    rel_orig = np.linalg.inv(c2w[0]) @ c2w[1]
    rel_new = np.linalg.inv(p[0]) @ p[1]
    np.testing.assert_allclose(rel_new[:3, :3], rel_orig[:3, :3], atol=1e-5)
    np.testing.assert_allclose(rel_new[:3, 3], rel_orig[:3, 3] * sc, atol=1e-5)


def test_llff_ndc_rays_start_on_the_near_plane(tmp_path):
    write_llff(tmp_path, forward_poses(3))
    scene = load_llff(tmp_path, factor=1)
    assert scene.ndc and (scene.near, scene.far) == (0.0, 1.0)
    rays = scene.rays(1)
    torch.testing.assert_close(rays.origins[:, 2], torch.full((len(rays),), -1.0))
    torch.testing.assert_close(rays.viewdirs.norm(dim=-1), torch.ones(len(rays)))


def test_llff_splits_hold_out_every_eighth(tmp_path):
    write_llff(tmp_path, forward_poses(10))
    scene = load_llff(tmp_path, factor=1)
    assert scene.splits["test"] == [0, 8] and scene.splits["val"] == [0, 8]
    assert scene.splits["train"] == [1, 2, 3, 4, 5, 6, 7, 9]
    nearest = load_llff(tmp_path, factor=1, llffhold=0)
    assert len(nearest.splits["test"]) == 1 and len(nearest.splits["train"]) == 9



def test_llff_val_can_come_from_the_training_views(tmp_path):
    write_llff(tmp_path, forward_poses(20))
    scene = load_llff(tmp_path, factor=1, val="train")
    assert scene.splits["test"] == [0, 8, 16] and scene.splits["val"] == [4, 12]
    assert set(scene.splits["val"]) <= set(scene.splits["train"]) and scene.meta["val"] == "train"
    assert load_llff(tmp_path, factor=1, llffhold=3, val="train").splits["val"] == [1, 4, 7, 10, 13, 16, 19]
    with pytest.raises(SceneError, match="val must be 'test'"):
        load_llff(tmp_path, factor=1, val="holdout")


def test_llff_downsamples_images_with_an_area_filter(tmp_path):
    images = write_llff(tmp_path, forward_poses(2), size=16)
    scene = load_llff(tmp_path, factor=2)
    expected = (images / 255.0).reshape(2, 8, 2, 8, 2, 3).mean((2, 4))
    torch.testing.assert_close(scene.images, torch.tensor(expected, dtype=torch.float32))
    assert scene.focal == 10.0


def test_llff_prefers_the_downsampled_folder(tmp_path):
    write_llff(tmp_path, forward_poses(2), size=16)
    small = np.random.default_rng(5).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    (tmp_path / "images_2").mkdir()
    for k, img in enumerate(small):
        iio.imwrite(tmp_path / "images_2" / f"IMG_{k:03d}.png", img)
    scene = load_llff(tmp_path, factor=2)
    torch.testing.assert_close(scene.images, torch.tensor(small / 255.0, dtype=torch.float32))


def test_llff_through_load_scene(tmp_path):
    write_llff(tmp_path, forward_poses(3))
    assert load_scene(tmp_path, factor=1).ndc


def test_llff_missing_dir(tmp_path):
    with pytest.raises(SceneError, match="scene directory not found"):
        load_llff(tmp_path / "absent")


def test_llff_missing_poses_bounds(tmp_path):
    write_llff(tmp_path, forward_poses(2))
    (tmp_path / "poses_bounds.npy").unlink()
    with pytest.raises(SceneError, match=r"poses_bounds\.npy: file not found") as e:
        load_llff(tmp_path, factor=1)
    one_line(e)


@pytest.mark.parametrize("array, pattern", [
    (np.zeros((3, 15)), r"shape \(3, 15\), expected \(N, 17\)"),
    (np.zeros(17), "expected"),
    (np.full((2, 17), np.nan), "NaN"),
])
def test_llff_malformed_poses_bounds(tmp_path, array, pattern):
    write_llff(tmp_path, forward_poses(2))
    np.save(tmp_path / "poses_bounds.npy", array)
    with pytest.raises(SceneError, match=pattern) as e:
        load_llff(tmp_path, factor=1)
    assert "poses_bounds.npy" in one_line(e)


def test_llff_unreadable_poses_bounds(tmp_path):
    write_llff(tmp_path, forward_poses(2))
    (tmp_path / "poses_bounds.npy").write_bytes(b"junk")
    with pytest.raises(SceneError, match="not a readable") as e:
        load_llff(tmp_path, factor=1)
    one_line(e)


def test_llff_camera_beyond_the_ndc_near_plane(tmp_path):
    """A view whose near bound is a millionth of the others' scales the cameras by a million: in NDC that
    camera stands beyond the near plane and its rays come out infinite; the loader refuses it in one line
    and the same scene loads without NDC."""
    write_llff(tmp_path, forward_poses(4))
    rows = np.load(tmp_path / "poses_bounds.npy")
    rows[2, 15] = 2e-6
    np.save(tmp_path / "poses_bounds.npy", rows)
    with pytest.raises(SceneError, match="beyond the NDC near plane") as e:
        load_llff(tmp_path, factor=1)
    assert "poses_bounds.npy" in one_line(e) and "ndc=False" in one_line(e)
    scene = load_llff(tmp_path, factor=1, ndc=False)
    assert torch.isfinite(scene.rays(0).origins).all()


def test_llff_camera_too_far_for_float32_ndc_rays(tmp_path):
    """A camera 10^9 units behind the near plane: its NDC rays lose every digit in float32 and come out
    infinite, which the loader refuses in one line rather than rendering."""
    c2w = forward_poses(4)
    c2w[3, 2, 3] = 1e9
    write_llff(tmp_path, c2w)
    with pytest.raises(SceneError, match="camera 3's NDC rays are not finite in float32") as e:
        load_llff(tmp_path, factor=1, recenter=False)
    assert "poses_bounds.npy" in one_line(e)


def test_llff_count_mismatch(tmp_path):
    write_llff(tmp_path, forward_poses(3))
    (tmp_path / "images" / "IMG_002.png").unlink()
    with pytest.raises(SceneError, match="2 images but poses_bounds.npy has 3 poses") as e:
        load_llff(tmp_path, factor=1)
    one_line(e)


def test_llff_missing_image_folder(tmp_path):
    write_llff(tmp_path, forward_poses(2), folder="photos")
    with pytest.raises(SceneError, match=r"no image folder \(images_4/ or images/ not found\)") as e:
        load_llff(tmp_path, factor=4)
    one_line(e)


def test_llff_mixed_sizes(tmp_path):
    write_llff(tmp_path, forward_poses(2))
    iio.imwrite(tmp_path / "images" / "IMG_001.png", np.zeros((12, 16, 3), np.uint8))
    with pytest.raises(SceneError, match=r"IMG_001\.png: image is 16x12, others are 16x16") as e:
        load_llff(tmp_path, factor=1)
    one_line(e)


# --- tiny-NeRF .npz --------------------------------------------------------------------------------

def write_npz(path: Path, n: int = 25, size: int = 4, **override) -> dict:
    rng = np.random.default_rng(0)
    arrays = {"images": rng.random((n, size, size, 3)).astype(np.float32),
              "poses": np.broadcast_to(np.eye(4), (n, 4, 4)).copy(), "focal": np.array(5.0)}
    arrays.update(override)
    np.savez(path, **arrays)
    return arrays


def test_npz_loads_with_the_builtin_split_rule(tmp_path):
    arrays = write_npz(tmp_path / "s.npz")
    scene = load_npz(tmp_path / "s.npz")
    torch.testing.assert_close(scene.images, torch.from_numpy(arrays["images"]))
    assert scene.focal == 5.0 and (scene.near, scene.far, scene.white_bkgd) == (2.0, 6.0, True)
    assert scene.splits["test"] == [5, 15] and scene.splits["val"] == [0, 20]
    assert len(scene.splits["train"]) == 21


def test_npz_uint8_images_and_bounds(tmp_path):
    imgs = np.full((3, 4, 4, 3), 51, np.uint8)
    write_npz(tmp_path / "u.npz", n=3, images=imgs)
    scene = load_scene(tmp_path / "u.npz", near=1.0, far=3.0)
    torch.testing.assert_close(scene.images, torch.full((3, 4, 4, 3), 0.2))
    assert (scene.near, scene.far) == (1.0, 3.0)


def test_npz_missing_file(tmp_path):
    with pytest.raises(SceneError, match=r"absent\.npz: scene file not found"):
        load_npz(tmp_path / "absent.npz")


def test_npz_garbage(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SceneError, match=r"bad\.npz: not a readable \.npz") as e:
        load_npz(tmp_path / "bad.npz")
    one_line(e)


def test_npz_single_array_file(tmp_path):
    with open(tmp_path / "one.npz", "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(SceneError, match="single .npy array"):
        load_npz(tmp_path / "one.npz")


def test_npz_missing_keys(tmp_path):
    np.savez(tmp_path / "k.npz", images=np.zeros((2, 4, 4, 3)), focal=np.array(1.0))
    with pytest.raises(SceneError, match=r"missing keys \['poses'\]") as e:
        load_npz(tmp_path / "k.npz")
    one_line(e)


@pytest.mark.parametrize("override, pattern", [
    ({"images": np.zeros((25, 4, 4))}, "'images' has shape"),
    ({"poses": np.zeros((25, 4, 3))}, "'poses' has shape"),
    ({"poses": np.zeros((24, 4, 4))}, "25 images but 24 poses"),
    ({"focal": np.array([1.0, 2.0])}, "'focal' has shape"),
    ({"focal": np.array(-1.0)}, "'focal' must be positive"),
    ({"poses": np.full((25, 4, 4), np.nan)}, "'poses' holds NaN"),
    ({"images": np.full((25, 4, 4, 3), 255.0)}, r"range \[255, 255\], expected \[0, 1\]"),
])
def test_npz_wrong_shapes_and_values(tmp_path, override, pattern):
    write_npz(tmp_path / "w.npz", **override)
    with pytest.raises(SceneError, match=pattern) as e:
        load_npz(tmp_path / "w.npz")
    assert "w.npz" in one_line(e)


# --- dispatch --------------------------------------------------------------------------------------

def test_load_scene_unknown_name():
    with pytest.raises(SceneError, match="unknown scene"):
        load_scene("teapot")


def test_load_scene_missing_path(tmp_path):
    with pytest.raises(SceneError, match="not found"):
        load_scene(tmp_path / "nothing" / "here")


def test_load_scene_directory_of_unknown_layout(tmp_path):
    with pytest.raises(SceneError, match="neither transforms_train.json"):
        load_scene(tmp_path)


# --- the real lego data (beside the project in ../shared/data) --------------------------------------

needs_lego = pytest.mark.skipif(not (DATA / "lego_tiny_100.npz").exists() or not (DATA / "lego_200").is_dir(),
                                reason=f"real data not found at {DATA} (lego_tiny_100.npz and lego_200/)")


def centre_ray_miss_distances(scene) -> torch.Tensor:
    """Distance from the world origin to the centre pixel's ray, per view."""
    c = (scene.height // 2) * scene.width + scene.width // 2
    out = []
    for i in range(len(scene.poses)):
        r = scene.rays(i)
        o, v = r.origins[c], r.viewdirs[c]
        out.append((o - (o @ v) * v).norm())
    return torch.stack(out)


@needs_lego
def test_lego_npz_and_blender_agree():
    tiny = load_npz(DATA / "lego_tiny_100.npz")
    lego = load_blender(DATA / "lego_200")
    assert tiny.images.shape == (100, 100, 100, 3) and lego.images.shape == (100, 200, 200, 3)
    assert lego.splits["test"] == list(range(90, 100))
    for scene in (tiny, lego):
        assert centre_ray_miss_distances(scene).max() < 1e-3  # every camera looks at the origin
        assert (scene.poses[:, :3, 3].norm(dim=-1) - 4.03).abs().max() < 0.05
    torch.testing.assert_close(tiny.poses, lego.poses)
    half = lego.rescaled(0.5)
    assert half.focal == pytest.approx(tiny.focal, rel=1e-6)
    assert psnr(half.images, tiny.images) > 40.0


@pytest.mark.parametrize("content, pattern", [(np.zeros((3, 3), np.float32), "depth map has shape"),
                                              (b"junk", "not a readable .npy depth map")])
def test_blender_bad_depth_file(tmp_path, content, pattern):
    write_blender(make_scene("object", size=8)[0], tmp_path)
    target = tmp_path / "train" / "r_0_depth.npy"
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        np.save(target, content)
    with pytest.raises(SceneError, match=pattern) as e:
        load_blender(tmp_path)
    assert "r_0_depth.npy" in one_line(e)


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def garbled_header(arr: np.ndarray) -> bytes:
    """An .npy file whose header dict is cut by NUL bytes: np.load's header parser raises SyntaxError, then
    tokenize.TokenError, neither of them a ValueError."""
    raw = bytearray(npy_bytes(arr))
    raw[58:61] = b"\x00\x00\x00"
    return bytes(raw)


def test_npy_files_with_a_garbled_header_are_one_line_errors(tmp_path):
    write_blender(make_scene("object", size=8)[0], tmp_path / "blender")
    depth = tmp_path / "blender" / "train" / "r_0_depth.npy"
    depth.write_bytes(garbled_header(np.load(depth)))
    with pytest.raises(SceneError, match="not a readable .npy depth map") as e:
        load_blender(tmp_path / "blender")
    assert "r_0_depth.npy" in one_line(e)
    write_llff(tmp_path / "llff", forward_poses(2))
    poses = tmp_path / "llff" / "poses_bounds.npy"
    poses.write_bytes(garbled_header(np.load(poses)))
    with pytest.raises(SceneError, match="not a readable") as e:
        load_llff(tmp_path / "llff", factor=1)
    assert "poses_bounds.npy" in one_line(e)
    arrays = write_npz(tmp_path / "s.npz")
    with zipfile.ZipFile(tmp_path / "s.npz", "w") as z:  # the same archive with a damaged member
        for name, arr in arrays.items():
            z.writestr(f"{name}.npy", garbled_header(arr) if name == "poses" else npy_bytes(arr))
    with pytest.raises(SceneError, match="corrupt array") as e:
        load_npz(tmp_path / "s.npz")
    assert "s.npz" in one_line(e)


def test_npz_needing_a_newer_zip_version_is_a_one_line_error(tmp_path):
    """zipfile raises NotImplementedError for a member that needs a zip feature it lacks."""
    write_npz(tmp_path / "s.npz")
    raw = bytearray((tmp_path / "s.npz").read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 6:central + 8] = (64).to_bytes(2, "little")  # "version needed to extract": 6.4
    (tmp_path / "s.npz").write_bytes(bytes(raw))
    with pytest.raises(SceneError, match=r"s\.npz: not a readable \.npz archive \(NotImplementedError\)") as e:
        load_npz(tmp_path / "s.npz")
    one_line(e)


def test_focal_length_too_short_for_finite_rays(tmp_path):
    write_npz(tmp_path / "s.npz", focal=np.array(4e-121))
    with pytest.raises(SceneError, match="focal length 4e-121 px is too short for 4x4 images") as e:
        load_npz(tmp_path / "s.npz")
    assert "s.npz" in one_line(e)


@pytest.mark.parametrize("bounds", [{"far": 3.5e38}, {"near": 3.4e38, "far": 3.4028234663852894e38}])
def test_bounds_beyond_float32_are_one_line_errors(tmp_path, bounds):
    write_npz(tmp_path / "s.npz")
    with pytest.raises(SceneError, match="beyond float32's range") as e:
        load_npz(tmp_path / "s.npz", **bounds)
    assert "s.npz" in one_line(e)


# --- issue 20: every value a loader reads is checked ---------------------------------------------

def _mutate_train_json(root: Path, edit) -> None:
    path = root / "transforms_train.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d.update(camera_angle_x="wide"), r"'camera_angle_x' is \"wide\", expected a finite number"),
    (lambda d: d.update(camera_angle_x=None), r"'camera_angle_x' is null, expected a finite number"),
    (lambda d: d.update(camera_angle_x=True), r"'camera_angle_x' is true, expected a finite number"),
    (lambda d: d.update(camera_angle_x=0), r"'camera_angle_x' is 0 radians, expected a field of view in \(0, pi\)"),
    (lambda d: d.update(camera_angle_x=-0.7), r"'camera_angle_x' is -0.7 radians"),
    (lambda d: d.update(camera_angle_x=4.0), r"'camera_angle_x' is 4 radians"),
    (lambda d: d.update(frames=5), r"'frames' is a int, expected a list of frames"),
    (lambda d: d.update(frames=[]), r"'frames' is empty"),
    (lambda d: d["frames"].__setitem__(0, "r_0.png"), r"frame 0 is a str, expected an object"),
    (lambda d: d["frames"][0].update(transform_matrix="identity"), r"frame 0 transform_matrix is not a finite 4x4"),
    (lambda d: d["frames"][0].update(transform_matrix=[[1, 0, 0, 0]] * 3 + [[0, 0, "x", 1]]), r"frame 0 transform_matrix"),
    (lambda d: d["frames"][0].update(transform_matrix=[[0.0] * 4] * 4), r"frame 0 transform_matrix has a degenerate"),
    (lambda d: d["frames"][1].update(file_path=17), r"frame 1 file_path is 17, expected a relative image path"),
    (lambda d: d["frames"][1].update(file_path="./"), r"frame 1 file_path is \"./\""),
    (lambda d: d["frames"][1].update(file_path="/etc/r_1"), r"frame 1 file_path is \"/etc/r_1\", expected a relative"),
    (lambda d: d["frames"][0].update(depth_file_path="/0"), r"frame 0 depth_file_path is \"/0\", expected a relative"),
    (lambda d: d.update(near="close"), r"'near' is \"close\", expected a finite number"),
    (lambda d: d.update(far=[6]), r"'far' is \[6\], expected a finite number"),
    (lambda d: d.update(near=5, far=1), r"need 0 <= near < far, got near=5, far=1"),
    (lambda d: d.update(near=-1), r"need 0 <= near < far, got near=-1"),
    (lambda d: d.update(white_background="no"), r"'white_background' is \"no\", expected true or false"),
    (lambda d: d["frames"][0].update(depth_file_path=3), r"frame 0 depth_file_path is 3"),
])
def test_blender_bad_values_are_one_line_errors(tmp_path, edit, pattern):
    write_rgba_blender(tmp_path)
    _mutate_train_json(tmp_path, edit)
    with pytest.raises(SceneError, match=pattern) as e:
        load_blender(tmp_path)
    line = one_line(e)
    assert "transforms_train.json" in line or str(tmp_path) in line


def test_blender_pose_beyond_float32_is_one_line_without_a_numpy_warning(tmp_path):
    write_rgba_blender(tmp_path)
    _mutate_train_json(tmp_path, lambda d: d["frames"][0]["transform_matrix"][0].__setitem__(3, 1e300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SceneError, match=r"frame 0 transform_matrix holds values beyond float32's range"):
            load_blender(tmp_path)


def test_blender_nan_in_json_is_refused(tmp_path):
    write_rgba_blender(tmp_path)
    path = tmp_path / "transforms_train.json"
    path.write_text(path.read_text().replace('"camera_angle_x": 0.69', '"camera_angle_x": NaN'))
    with pytest.raises(SceneError, match=r"transforms_train\.json: 'camera_angle_x' is NaN"):
        load_blender(tmp_path)


def test_blender_bounds_given_by_the_caller_are_checked(tmp_path):
    write_rgba_blender(tmp_path)
    with pytest.raises(SceneError, match=r"need 0 <= near < far, got near=5, far=1") as e:
        load_blender(tmp_path, near=5.0, far=1.0)
    one_line(e)


def test_blender_grey_alpha_images_are_composited(tmp_path):
    (tmp_path / "train").mkdir()
    img = np.zeros((8, 8, 2), np.uint8)
    img[..., 0] = 100
    img[:, 4:, 1] = 255
    iio.imwrite(tmp_path / "train" / "g.png", img)
    frame = {"file_path": "train/g", "transform_matrix": np.eye(4).tolist()}
    (tmp_path / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": [frame]}))
    scene = load_blender(tmp_path)
    assert scene.images.shape == (1, 8, 8, 3)
    assert torch.allclose(scene.images[0, :, :4], torch.ones(8, 4, 3))  # transparent: the white background
    assert torch.allclose(scene.images[0, :, 4:], torch.full((8, 4, 3), 100 / 255))


@pytest.mark.parametrize("focal", [0.0, -20.0])
def test_llff_non_positive_focal_is_refused_before_rendering(tmp_path, focal):
    write_llff(tmp_path, forward_poses(4), focal=focal)
    with pytest.raises(SceneError, match=rf"poses_bounds\.npy: row 0 has focal length {focal:g}; it must be "
                                         "positive") as e:
        load_llff(tmp_path, factor=1)
    one_line(e)


def test_llff_near_beyond_far_and_degenerate_rotation_are_refused(tmp_path):
    write_llff(tmp_path, forward_poses(4), bounds=(10.0, 2.0))
    with pytest.raises(SceneError, match=r"row 0 has near bound 10 >= far bound 2"):
        load_llff(tmp_path, factor=1)
    rows = np.load(tmp_path / "poses_bounds.npy")
    rows[:, 15:] = (2.0, 10.0)
    rows[1, :15].reshape(3, 5)[:, :3] = 0.0
    np.save(tmp_path / "poses_bounds.npy", rows)
    with pytest.raises(SceneError, match=r"row 1 has a degenerate"):
        load_llff(tmp_path, factor=1)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"factor": 2.5}, "factor must be a positive integer, got 2.5"),
    ({"factor": -2}, "factor must be a positive integer, got -2"),
    ({"bd_factor": 0.0}, "bd_factor must be a positive number or None, got 0.0"),
    ({"llffhold": 1}, "llffhold=1 holds out all 4 views"),
])
def test_llff_bad_settings_are_refused(tmp_path, kwargs, pattern):
    write_llff(tmp_path, forward_poses(4))
    with pytest.raises(SceneError, match=pattern) as e:
        load_llff(tmp_path, **{"factor": 1, **kwargs})
    one_line(e)


def test_npz_complex_values_and_bounds_are_refused(tmp_path):
    write_npz(tmp_path / "c.npz", focal=np.array(5.0 + 1.0j))
    with pytest.raises(SceneError, match=r"c\.npz: 'focal' holds NaN, inf or non-numeric"):
        load_npz(tmp_path / "c.npz")
    write_npz(tmp_path / "b.npz")
    with pytest.raises(SceneError, match=r"b\.npz: far is nan, expected a finite number"):
        load_npz(tmp_path / "b.npz", far=float("nan"))


def test_rescaling_below_four_pixels_is_refused(tmp_path):
    scene = make_scene("object", size=16)[0]
    assert scene.rescaled(0.25).width == 4
    with pytest.raises(SceneError, match=r"scale 0\.0001 makes its 16x16 views 1x1 pixels; need at least 4 on a "
                                         r"side \(use a scale of at least 0\.25\)") as e:
        scene.rescaled(0.0001)
    one_line(e)
    with pytest.raises(SceneError, match=r"scale 0\.5 makes its 4x4 views 2x2 pixels; need at least 4 on a side \(it cannot be scaled down\)"):
        scene.rescaled(0.25).rescaled(0.5)


def test_sampling_rays_from_an_empty_split_is_one_line(tmp_path):
    from dataclasses import replace

    scene = make_scene("object", size=8)[0]
    scene = replace(scene, splits={**scene.splits, "train": []})
    with pytest.raises(SceneError, match="split 'train' has no views"):
        scene.sample_rays(16)


def test_llff_camera_turned_away_is_refused_in_ndc_only(tmp_path):
    c2w = forward_poses(8)
    turn = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # 90 degrees about y
    c2w[3, :3, :3] = turn @ c2w[3, :3, :3]
    write_llff(tmp_path, c2w)
    with pytest.raises(SceneError, match=r"camera 3 does not face the scene like the others.*ndc=False") as e:
        load_llff(tmp_path, factor=1)
    one_line(e)
    scene = load_llff(tmp_path, factor=1, ndc=False)
    assert torch.isfinite(scene.rays(3).directions).all()


def test_blender_huge_integers_are_refused(tmp_path):
    write_rgba_blender(tmp_path)
    path = tmp_path / "transforms_train.json"
    path.write_text(path.read_text().replace('"camera_angle_x": 0.69', '"camera_angle_x": 1' + "0" * 400))
    with pytest.raises(SceneError, match=r"'camera_angle_x' is 1000.*expected a finite number"):
        load_blender(tmp_path)
