"""Fuzzing the loaders (issue 20): real small Blender, LLFF and `.npz` scenes and checkpoints, written
here, then mutated by hypothesis (values of the wrong type, shapes, NaN/inf, missing keys, truncated or
garbled files). Each load must end in a one-line SceneError/CheckpointError naming the file, or give a
scene/model that is actually usable; never any other exception. Compressor names, built from the
registry's words and noise, must build or end in a one-line CompressorError; scene names, parse (and
small built-in scenes load) or end in a one-line SceneError. Every option of every `nerf-eval` command
but the paths, set to a drawn value, must run (exit 0) or end in one error line (exit 2).

Seeded (`derandomize=True`) so CI sees the same examples on every run; about 50 per loader. A longer
campaign draws fresh examples: `NERF_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_inputs.py` (random seeds,
that many examples per loader; hypothesis prints the failing example to add as a regression test).
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerf_eval.checkpoint import load_checkpoint, load_torch_file, save_checkpoint
from nerf_eval.compress import available, get_compressor
from nerf_eval.compress.saved import load_any, save_compressed
from nerf_eval.errors import CheckpointError, CompressorError, SceneError
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import Rays, RenderSettings, render_chunked
from nerf_eval.scenes import parse_scene_spec
from nerf_eval.scenes.blender import load_blender
from nerf_eval.scenes.llff import load_llff
from nerf_eval.scenes.npz import load_npz

CAMPAIGN = int(os.environ.get("NERF_FUZZ_EXAMPLES", "0"))  # 0: CI's fixed examples
FUZZ = settings(max_examples=CAMPAIGN or 50, deadline=None, derandomize=not CAMPAIGN, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TINY = NeRFConfig(depth=2, width=16, skips=(0,), multires=2, multires_views=1, view_width=8)
SIZE = 8

# JSON values of every type, including the ones json.dumps writes outside the standard (NaN, Infinity)
# and integers too large for a float
json_leaves = (st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0, -1, 10 ** 400, 1e308])
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=4))
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=20)


def one_line(e: Exception, name: str) -> None:
    msg = str(e)
    assert "\n" not in msg and name in msg, msg


def usable_scene(scene) -> None:
    """What rendering and metrics need, checked independently of the loader's own checks."""
    n, h, w, c = scene.images.shape
    assert n >= 1 and h >= 1 and w >= 1 and c == 3
    assert torch.isfinite(scene.images).all() and 0.0 <= scene.images.min() and scene.images.max() <= 1.0
    assert scene.poses.shape == (n, 4, 4) and torch.isfinite(scene.poses).all()
    assert math.isfinite(scene.focal) and scene.focal > 0
    assert math.isfinite(scene.near) and math.isfinite(scene.far) and 0 <= scene.near < scene.far
    assert all(0 <= i < n for idx in scene.splits.values() for i in idx)
    for i in (0, n - 1):
        rays = scene.rays(i)
        for t in (rays.origins, rays.directions, rays.viewdirs):
            assert torch.isfinite(t).all()


def garble(data: bytes, draw) -> bytes:
    """Truncate, or overwrite a stretch with random bytes."""
    if draw(st.booleans()):
        return data[:draw(st.integers(0, max(0, len(data) - 1)))]
    at = draw(st.integers(0, len(data) - 1))
    junk = draw(st.binary(min_size=1, max_size=16))
    return data[:at] + junk + data[at + len(junk):]


def paths_of(obj, prefix=()):
    """Every path (tuple of keys/indices) into a nest of dicts and lists."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths_of(v, prefix + (i,))


def mutate_json(doc, draw):
    """Replace or delete the value at a random path, or add an unknown key."""
    doc = copy.deepcopy(doc)
    path = draw(st.sampled_from([p for p in paths_of(doc) if p]))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    action = draw(st.sampled_from(["replace", "replace", "delete"]))
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return doc


# --- Blender ---------------------------------------------------------------------------------------

def blender_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    files, frames = {}, []
    for k in range(3):
        img = rng.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
        files[f"train/r_{k}.png"] = iio.imwrite("<bytes>", img, extension=".png")
        buf = io.BytesIO()
        np.save(buf, rng.uniform(2.0, 6.0, (SIZE, SIZE)).astype(np.float32))
        files[f"train/r_{k}_depth.npy"] = buf.getvalue()
        pose = np.eye(4)
        pose[:3, 3] = [0.1 * k, 0.0, 4.0]
        frames.append({"file_path": f"./train/r_{k}", "transform_matrix": pose.tolist(),
                       "depth_file_path": f"./train/r_{k}_depth.npy"})
    doc = {"camera_angle_x": 0.69, "near": 2.0, "far": 6.0, "white_background": True, "frames": frames}
    files["transforms_train.json"] = json.dumps(doc).encode()
    return files


BLENDER = blender_files()


def write_files(files: dict[str, bytes]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def loads_or_is_refused(files: dict[str, bytes], load, refusal: type[Exception], usable, open_name: str = "") -> None:
    """Write `files` into a fresh directory and `load` it (the directory, or `open_name` in it): either the
    loader refuses with one line naming what it opened, or what it returns passes `usable`."""
    root = write_files(files)
    path = root / open_name if open_name else root
    try:
        loaded = load(path)
    except refusal as e:
        one_line(e, str(path))
    else:
        usable(loaded)
    finally:
        shutil.rmtree(root)


def test_unmutated_blender_scene_loads():
    root = write_files(BLENDER)
    try:
        usable_scene(load_blender(root))
    finally:
        shutil.rmtree(root)


@FUZZ
@given(st.data())
def test_mutated_blender_scene_loads_or_is_refused_in_one_line(data):
    files = dict(BLENDER)
    target = data.draw(st.sampled_from(["json", "json", "json", "image", "depth", "raw-json"]))
    if target == "json":
        doc = mutate_json(json.loads(files["transforms_train.json"]), data.draw)
        files["transforms_train.json"] = json.dumps(doc).encode()
    elif target == "raw-json":
        files["transforms_train.json"] = garble(files["transforms_train.json"], data.draw)
    else:
        k = data.draw(st.integers(0, 2))
        name = f"train/r_{k}.png" if target == "image" else f"train/r_{k}_depth.npy"
        files[name] = garble(files[name], data.draw)
    kwargs = data.draw(st.fixed_dictionaries({}, optional={"near": st.floats(allow_nan=True),
                                                           "far": st.floats(allow_nan=True)}))
    loads_or_is_refused(files, lambda root: load_blender(root, **kwargs), SceneError, usable_scene)


# --- LLFF ------------------------------------------------------------------------------------------

def llff_files() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    rows, files = [], {}
    for k in range(4):
        a, b = rng.uniform(-0.1, 0.1, 2)
        rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
        r, t = rx @ ry, np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), 3.0])
        mat = np.stack([-r[:, 1], r[:, 0], r[:, 2], t, [SIZE, SIZE, 10.0]], 1)
        rows.append(np.concatenate([mat.ravel(), [2.0, 10.0]]))
        files[f"images/IMG_{k}.png"] = iio.imwrite(
            "<bytes>", rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), extension=".png")
    buf = io.BytesIO()
    np.save(buf, np.array(rows))
    files["poses_bounds.npy"] = buf.getvalue()
    return files


LLFF = llff_files()
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -1.0, 1e-12, 1e300])


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def mutate_array(arr: np.ndarray, draw) -> np.ndarray:
    """A changed element, shape or dtype."""
    how = draw(st.sampled_from(["element", "element", "row", "shape", "dtype"]))
    arr = arr.copy()
    if how == "element":
        with np.errstate(all="ignore"):  # 1e300 into float32 is inf, which is the point
            arr.reshape(-1)[draw(st.integers(0, arr.size - 1))] = draw(numbers)
    elif how == "row":
        with np.errstate(all="ignore"):
            arr[draw(st.integers(0, len(arr) - 1))] = draw(numbers)
    elif how == "shape":
        shapes = [arr[:0], arr[:1], arr.reshape(-1), arr[..., None], np.concatenate([arr, arr[:1]])]
        if arr.ndim >= 2:
            shapes += [arr[:, :-1], arr.T]
        arr = draw(st.sampled_from(shapes))
    else:
        arr = arr.astype(draw(st.sampled_from([np.int8, np.float16, np.bool_, np.complex64, np.str_, object])))
    return arr


def test_unmutated_llff_scene_loads():
    root = write_files(LLFF)
    try:
        usable_scene(load_llff(root, factor=1))
        usable_scene(load_llff(root, factor=1, ndc=False))
    finally:
        shutil.rmtree(root)


@FUZZ
@given(st.data())
def test_mutated_llff_scene_loads_or_is_refused_in_one_line(data):
    files = dict(LLFF)
    target = data.draw(st.sampled_from(["array", "array", "array", "raw", "image", "drop-image"]))
    if target == "array":
        rows = np.load(io.BytesIO(files["poses_bounds.npy"]))
        files["poses_bounds.npy"] = npy_bytes(mutate_array(rows, data.draw))
    elif target == "raw":
        files["poses_bounds.npy"] = garble(files["poses_bounds.npy"], data.draw)
    elif target == "image":
        name = f"images/IMG_{data.draw(st.integers(0, 3))}.png"
        files[name] = garble(files[name], data.draw)
    else:
        del files[f"images/IMG_{data.draw(st.integers(0, 3))}.png"]
    kwargs = data.draw(st.fixed_dictionaries({"factor": st.sampled_from([1, 1, 1, 2, 0, -1, 2.5, True, None])},
                                             optional={"llffhold": st.sampled_from([0, 1, 2, 8, -1, 1.5]),
                                                       "bd_factor": st.sampled_from([None, 0.75, 0.0, -1.0,
                                                                                     float("nan")]),
                                                       "ndc": st.booleans(), "recenter": st.booleans()}))
    loads_or_is_refused(files, lambda root: load_llff(root, **kwargs), SceneError, usable_scene)


# --- tiny-NeRF .npz --------------------------------------------------------------------------------

def npz_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    poses = np.broadcast_to(np.eye(4), (6, 4, 4)).copy()
    poses[:, 2, 3] = 4.0 + np.arange(6) * 0.1
    return {"images": rng.random((6, SIZE, SIZE, 3)).astype(np.float32), "poses": poses, "focal": np.array(10.0)}


NPZ = npz_arrays()


@FUZZ
@given(st.data())
def test_mutated_npz_scene_loads_or_is_refused_in_one_line(data):
    arrays = dict(NPZ)
    target = data.draw(st.sampled_from(["images", "poses", "focal", "drop", "extra", "raw"]))
    if target in NPZ:
        arr = arrays[target]
        arrays[target] = mutate_array(arr if arr.ndim else arr.reshape(1), data.draw)
    elif target == "drop":
        del arrays[data.draw(st.sampled_from(sorted(NPZ)))]
    elif target == "extra":
        arrays["notes"] = np.array(["x"])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    raw = buf.getvalue() if target != "raw" else garble(buf.getvalue(), data.draw)
    kwargs = data.draw(st.fixed_dictionaries({}, optional={"near": numbers, "far": numbers}))
    loads_or_is_refused({"s.npz": raw}, lambda path: load_npz(path, **kwargs), SceneError, usable_scene, "s.npz")


# --- checkpoints -----------------------------------------------------------------------------------

tensors = st.builds(
    lambda shape, dtype, fill: torch.full(shape, fill).to(dtype),
    st.lists(st.integers(0, 3), max_size=3).map(tuple),
    st.sampled_from([torch.float32, torch.float16, torch.int64, torch.bool, torch.complex64]),
    st.sampled_from([0.0, 1.0, float("nan"), float("inf"), -2.5]))
entry_values = tensors | json_leaves | st.lists(json_leaves, max_size=3) | st.dictionaries(st.text(max_size=3),
                                                                                          json_leaves, max_size=2)


def checkpoint_paths(obj, prefix=()):
    """Paths into a checkpoint: its entries, and the entries of its dicts (state dicts, config, meta)."""
    for k, v in obj.items():
        yield prefix + (k,)
        if isinstance(v, dict) and len(prefix) == 0:
            yield from checkpoint_paths(v, prefix + (k,))


def mutate_checkpoint(obj: dict, draw) -> dict:
    obj = copy.deepcopy(obj)
    path = draw(st.sampled_from(sorted(checkpoint_paths(obj), key=str)))
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    value = parent[path[-1]]
    action = draw(st.sampled_from(["replace", "delete", "nan", "shape"]))
    if action == "delete":
        del parent[path[-1]]
    elif action == "nan" and isinstance(value, torch.Tensor) and value.numel():
        value = value.clone()
        value.view(-1)[draw(st.integers(0, value.numel() - 1))] = draw(st.sampled_from([math.nan, math.inf]))
        parent[path[-1]] = value
    elif action == "shape" and isinstance(value, torch.Tensor):
        parent[path[-1]] = draw(st.sampled_from([value[:-1], value.T, value.reshape(-1), value[None]]))
    else:
        parent[path[-1]] = draw(entry_values)
    return obj


def usable_pair(pair: ModelPair) -> None:
    g = torch.Generator().manual_seed(0)
    rays = Rays.from_od(torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), 2.0, 6.0)
    out = render_chunked(pair, rays, RenderSettings(n_coarse=4, n_fine=4))
    assert out["rgb"].shape == (4, 3)


def float_checkpoint() -> dict:
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        save_checkpoint(root / "m.pt", ModelPair.create(TINY, seed=0), global_step=3, meta={"scene": "object"})
        return load_torch_file(root / "m.pt")
    finally:
        shutil.rmtree(root)


FLOAT = float_checkpoint()


@FUZZ
@given(st.data())
def test_mutated_checkpoint_loads_or_is_refused_in_one_line(data):
    obj = FLOAT
    if data.draw(st.booleans()):
        obj = mutate_checkpoint(obj, data.draw)
        if data.draw(st.booleans()):  # nerf-pytorch's layout: only the networks and the step
            obj = {k: v for k, v in obj.items() if k in ("global_step", "network_fn_state_dict",
                                                         "network_fine_state_dict")}
    buf = io.BytesIO()
    torch.save(obj, buf)
    raw = buf.getvalue() if obj is not FLOAT else garble(buf.getvalue(), data.draw)
    loads_or_is_refused({"m.tar": raw}, load_checkpoint, CheckpointError, usable_pair, "m.tar")


@pytest.fixture(scope="module")
def compressed() -> list[dict]:
    pair = ModelPair.create(TINY, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    rays = Rays.from_od(torch.tensor([0.0, 0.0, 4.0]) + 0.1 * torch.randn(64, 3, generator=g),
                        torch.tensor([0.0, 0.0, -1.0]) + 0.2 * torch.randn(64, 3, generator=g), 2.0, 6.0)
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        objs = []
        for spec in ("bf16", "int8-dynamic", "int4-weight:8"):
            save_compressed(root / f"{len(objs)}.pt", get_compressor(spec).compress(pair, rays), spec)
            objs.append(load_torch_file(root / f"{len(objs)}.pt"))
        return objs
    finally:
        shutil.rmtree(root)


def compressed_paths(obj):
    yield ("compressor",)
    yield ("config",)
    yield ("networks",)
    for name, rec in obj["networks"].items():
        yield ("networks", name)
        for key in rec:
            yield ("networks", name, key)
        for key in rec["settings"]:
            yield ("networks", name, "settings", key)
        for key in rec["state"]:
            yield ("networks", name, "state", key)


@settings(max_examples=CAMPAIGN or 40, deadline=None, derandomize=not CAMPAIGN, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_compressed_model_loads_or_is_refused_in_one_line(compressed, data):
    obj = copy.deepcopy(data.draw(st.sampled_from(compressed)))
    path_ = data.draw(st.sampled_from(list(compressed_paths(obj))))
    parent = obj
    for k in path_[:-1]:
        parent = parent[k]
    if data.draw(st.booleans()):
        del parent[path_[-1]]
    else:
        value = parent[path_[-1]]
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel() and data.draw(st.booleans()):
            value = value.clone()
            value.view(-1)[0] = math.nan
            parent[path_[-1]] = value
        else:
            parent[path_[-1]] = data.draw(entry_values)
    buf = io.BytesIO()
    torch.save(obj, buf)
    loads_or_is_refused({"c.pt": buf.getvalue()}, load_any, CheckpointError, usable_pair, "c.pt")


# --- compressor names ------------------------------------------------------------------------------

BASE_NAMES = sorted({name.split(":")[0] for name in available()})
name_pieces = st.one_of(st.sampled_from(BASE_NAMES),
                        st.sampled_from([":", "=", "+", ",", " ", "pipeline", "coarse", "fine", "res", "round",
                                         "threshold", "stop", "0", "-1", "0.5", "1e309", "nan", "64", "True"]),
                        st.text(max_size=4))


@FUZZ
@given(st.lists(name_pieces, min_size=1, max_size=8).map("".join))
def test_any_compressor_name_builds_or_is_refused_in_one_line(text):
    """Names come from command lines, ini files and conftests: a typo must end in one line naming it."""
    try:
        compressor = get_compressor(text)
    except CompressorError as e:
        assert "\n" not in str(e), str(e)
    else:
        assert compressor.name


# --- scene names -----------------------------------------------------------------------------------

scene_pieces = st.one_of(st.sampled_from(["object", "forward", "x.npz", "/nonexistent", ":", "=", ",", " ", "size",
                                          "factor", "llffhold", "near", "far", "white_bkgd", "ndc", "seed", "val",
                                          "0", "-1", "1e309", "nan", "8", "true", "maybe", "2.5"]),
                         st.text(max_size=3))


@FUZZ
@given(st.lists(scene_pieces, min_size=1, max_size=9).map("".join))
def test_any_scene_name_parses_or_is_refused_in_one_line(text):
    """`--scene` and `--nerf-scene` take any string; small built-in scenes it names also load."""
    try:
        spec = parse_scene_spec(text)
        if spec.kind == "builtin" and isinstance(spec.options.get("size"), int) and spec.options["size"] <= 16:
            usable_scene(spec.load())
    except SceneError as e:
        assert "\n" not in str(e), str(e)


# --- command-line options --------------------------------------------------------------------------

# the options that name files or directories are fuzzed by the loaders above and the output checks of
# tests/test_cli_bad_inputs.py; every other option of every command is drawn here
PATH_OPTIONS = {"--scene", "--checkpoint", "--out", "--json", "--save", "--extend", "--storage", "--plot"}
option_values = st.one_of(
    st.sampled_from(["0", "-1", "1", "2", "3", "nan", "inf", "-inf", "1e400", "1e-30", "1e30", "1e300", "", " ", "abc",
                     "2.5", "0.5", "1,2", "0,1", "-0", "1_0", "0x10", "*z", "fp32", "bf16", "int8", "cuda", "cpu",
                     "train", "val", "test", "speed", "\u0663"]),
    st.integers(-3, 24).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=4))


OUTPUTS = itertools.count()


@pytest.fixture(scope="module")
def cli_target(tmp_path_factory):
    """A tiny Blender scene and checkpoint, and each command's argv that runs in about a second on them
    (`scene`, whose only option is its seed, writes a full-size scene: not drawn)."""
    from nerf_eval.scenes.blender import write_blender
    from nerf_eval.scenes.procedural import make_scene

    root = tmp_path_factory.mktemp("options")
    scene = str(write_blender(make_scene("object", size=SIZE)[0], root / "scene"))
    ckpt = str(save_checkpoint(root / "tiny.pt", ModelPair.create(TINY, seed=1)))
    run = save_checkpoint(root / "run" / "checkpoint.pt", ModelPair.create(TINY, seed=1), meta={"scene": scene})
    samples = ["--n-coarse", "4", "--n-fine", "4"]
    return root, {
        "train": ["train", "--scene", f"object:size={SIZE}", "--steps", "2", "--warmstart-steps", "1",
                  "--warmstart-points", "64", "--batch-rays", "16", "--checkpoint-every", "60", *samples],
        "evaluate": ["evaluate", "--checkpoint", ckpt, "--scene", scene, "--views", "0", "--no-flip", *samples],
        "compress": ["compress", "--checkpoint", ckpt, "--scene", scene, "--compressor", "int8-ptq-both",
                     "--calibration-rays", "64"],
        "render": ["render", "--checkpoint", ckpt, "--scene", scene, "--frames", "2", "--scale", "0.5"],
        "report": ["report", "--checkpoint", ckpt, "--scene", scene, "--compressors", "bf16", "--views", "0",
                   "--calibration-rays", "64", "--latency-rays", "16", "--repeats", "1", *samples],
        "roofline": ["roofline", "--checkpoint", ckpt, "--scene", scene, "--compressors", "fp32", "--rays", "16",
                     "--rounds", "1", "--calibration-rays", "64"],
        "autocompress": ["autocompress", "--checkpoint", ckpt, "--scene", scene, "--budget-minutes", "0.05",
                         "--ratios", "0", "--precisions", "fp32", "--accelerators", "", "--calibration-views", "1",
                         "--confirm-views", "1", "--calibration-rays", "64", "--latency-rays", "16"],
        "card": ["card", str(run.parent), "--scene", scene, "--command", "nerf-eval train", "--views", "0",
                 "--scale", "0.5", "--force"],
    }


def drawn_options(parser_of_command) -> list[str]:
    return sorted(a.option_strings[-1] for a in parser_of_command._actions
                  if a.option_strings and a.nargs != 0 and a.option_strings[-1] not in PATH_OPTIONS | {"--help"})


@FUZZ
@given(data=st.data())
def test_any_option_value_works_or_is_refused_in_one_line(cli_target, data):
    """Every command, one option set to a drawn value (a number out of range, NaN, text, an empty string):
    exit 0, or exit 2 with one `nerf-eval: error:` line (argparse's own refusals print its usage first);
    never a traceback."""
    import argparse

    from nerf_eval.cli import build_parser, main

    root, bases = cli_target
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    command = data.draw(st.sampled_from(sorted(bases)))
    option = data.draw(st.sampled_from(drawn_options(commands[command])))
    value = data.draw(option_values)
    argv = list(bases[command])
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    out = root / "out" / str(next(OUTPUTS))  # a fresh location each run: an existing one is refused
    if command in ("train", "report", "roofline", "autocompress"):
        argv += ["--out", str(out)]
    elif command in ("compress", "render"):
        argv += ["--out", str(out) + (".gif" if command == "render" else ".pt")]
    threads, stderr = torch.get_num_threads(), io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
    except SystemExit as e:  # argparse: an unknown choice, a value that is not an int
        assert e.code == 2 and "error: argument" in stderr.getvalue(), (argv, stderr.getvalue())
        return
    finally:
        torch.set_num_threads(threads)
    err = stderr.getvalue()
    assert rc in (0, 2), (argv, err)
    if rc == 2:
        errors = [line.split("nerf-eval: error: ", 1)[1] for line in err.splitlines() if "nerf-eval: error: " in line]
        assert len(errors) == 1 and errors[0].strip(), (argv, err)


def mutated(doc, draw):
    """`mutate_json` one to three times (a legacy document without its spec and with a bad setting, say)."""
    for _ in range(draw(st.integers(1, 3))):
        doc = mutate_json(doc, draw) if any(paths_of(doc)) else doc  # a leaf has no path to mutate
    return doc


# --- saved benchmark runs --------------------------------------------------------------------------

NODEID = "test_b.py::test_compressor[fp32]"
RECORD = {"name": "fp32", "target": "scene", "scene": "scene", "checkpoint": "tiny.pt",
          "checkpoint_sha256": "369042f0aaa5db4b9f29b333dec706bd44d3c97718b72775d2548635f7b8a4dc",
          "settings": {"views": [95], "height": 8, "width": 8, "samples": [8, 8], "scale": 1.0, "calibration_rays": 64,
                       "calibration_seed": 0, "latency_rays": 32, "latency_seed": 1},
          "psnr": 59.46, "ssim": 0.9989, "flip": 0.0083, "worst_psnr": 59.46, "worst_view": 95, "depth_error": 1.42,
          "depth_change": 0.0, "sharpness": 0.79, "size_bytes": 55119, "size_fine_bytes": 27897, "params": 11560,
          "latency_s": 0.00236, "speedup": 1.49, "speedup_spread": 0.0, "reference_latency_s": 0.00353,
          "latency_rounds": 1, "latency_threads": 1, "render_time_s": None, "baseline_time_s": None,
          "compress_time_s": None, "views": [95], "per_view": [{"psnr": 59.46, "ssim": 0.9989}], "error": None}
SAVED_RUN = {"machine_info": {"node": "ci", "cpu": {"brand_raw": "AMD EPYC"}}, "commit_info": {"id": "abc"},
             "benchmarks": [{"group": None, "name": "test_compressor[fp32]", "fullname": NODEID,
                             "params": {"nerf_compressor": "fp32"}, "param": "fp32",
                             "extra_info": {"nerfcompress": RECORD}, "options": {"timer": "perf_counter"},
                             "stats": {"min": 0.0034, "max": 0.0034, "mean": 0.0034, "rounds": 1}}],
             "nerfcompress": {"records": [{"test": "test_b.py::test_measure", "record": {**RECORD, "name": "bf16"}}]},
             "datetime": "2026-12-03T14:31:41", "version": "5.1.0"}


@FUZZ
@given(st.data())
def test_mutated_saved_run_compares_or_is_refused_in_one_line(data):
    """A saved pytest-benchmark run (`--benchmark-compare`, `nerf-eval history`) with a field of the wrong
    type, removed or garbled: the plugin's comparison refuses it in one line naming the file, or compares
    it with one line per finding; history lists it or refuses it in one line; never any other exception."""
    from nerf_eval.history import HistoryError, history_table, load_runs
    from nerf_eval.measure import Record
    from nerf_eval.measure.gates import check_saved, tolerances
    from nerf_eval.measure.spec import MeasurementSpec
    from pytest_nerfcompress.storage import SavedRunError, load_saved_run

    raw = json.dumps(mutated(SAVED_RUN, data.draw), allow_nan=True).encode()
    if data.draw(st.booleans()):
        raw = garble(raw, data.draw)
    root = write_files({"Linux-CPython-3.11-64bit/0001_run.json": raw})
    try:
        path = root / "Linux-CPython-3.11-64bit" / "0001_run.json"
        try:
            run = load_saved_run(path)
        except SavedRunError as e:
            one_line(e, "0001_run.json")
        else:
            spec = MeasurementSpec.from_dict(Record.from_dict(RECORD).identity())
            for name in ("fp32", "bf16"):
                saved = run.quality(NODEID if name == "fp32" else "test_b.py::test_measure", name)
                reason = spec.mismatch(saved) if saved is not None else None
                if saved is not None and reason is None:
                    out = check_saved(name, RECORD, saved, run.source, tolerances(["speedup:10%"]))
                    assert all("\n" not in line for line in out.failures + out.warnings)
                assert reason is None or "\n" not in reason, reason
        try:
            history_table(load_runs(root))
        except HistoryError as e:
            one_line(e, "0001_run.json")
    finally:
        shutil.rmtree(root)


# --- an earlier report (`nerf-eval report --extend`) -----------------------------------------------

def committed_report() -> dict:
    doc = json.loads((Path(__file__).parents[1] / "reports" / "object-coarse-grid" / "results.json").read_text())
    recipe = {"steps": 100, "rays": 1024, "samples": "32+64", "lr": "1e-4 to 1e-5", "arithmetic": "fp32"}
    doc["settings"].update(finetune="100 steps, 1024 rays, 32+64 samples", finetune_recipe=recipe)
    return {"settings": doc["settings"], "results": doc["results"][:2]}


REPORT = committed_report()


@FUZZ
@given(st.data())
def test_mutated_report_extends_or_is_refused_in_one_line(data):
    """`report --extend` reads an earlier report's results.json: with a field of the wrong type, removed or
    garbled, it gives the rows to reuse or one line naming the file; never any other exception."""
    from nerf_eval.cli.report import _earlier_rows
    from nerf_eval.errors import NerfEvalError
    from nerf_eval.measure import Record
    from nerf_eval.measure.spec import MeasurementSpec

    doc = copy.deepcopy(REPORT)
    if data.draw(st.booleans()):  # a report written before specs: its settings are compared instead
        del doc["settings"]["spec"]
    raw = json.dumps(mutated(doc, data.draw), allow_nan=True).encode()
    if data.draw(st.booleans()):
        raw = garble(raw, data.draw)
    root = write_files({"results.json": raw})
    meta = {"machine": REPORT["settings"]["machine"], "finetune": REPORT["settings"]["finetune"],
            "finetune_recipe": dict(REPORT["settings"]["finetune_recipe"])}
    try:
        rows, _ = _earlier_rows(root, meta, MeasurementSpec.from_dict(REPORT["settings"]["spec"]))
        assert all(isinstance(r, Record) for r in rows)
    except NerfEvalError as e:
        one_line(e, "results.json")
    finally:
        shutil.rmtree(root)
