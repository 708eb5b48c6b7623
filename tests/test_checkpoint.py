"""Checkpoints: round trip, nerf-pytorch `.tar` import, and one-line errors for every bad file."""

import pickle

import pytest
import torch

from nerf_eval.checkpoint import (atomic_save, file_hash, infer_config, load_checkpoint, read_checkpoint,
                                  save_checkpoint)
from nerf_eval.errors import CheckpointError
from nerf_eval.model import ModelPair, NeRF, NeRFConfig
from nerf_eval.render import Rays, RenderSettings, render_chunked

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)
SETTINGS = RenderSettings(n_coarse=8, n_fine=8)


class NotAWeight:
    """A custom class: pickling it stores a reference to code, which weights_only loading refuses."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def probe_rays() -> Rays:
    o = torch.tensor([[0.0, 0.0, 4.0]]).expand(12, 3)
    d = torch.nn.functional.normalize(torch.randn(12, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    return Rays.from_od(o, d - torch.tensor([0.0, 0.0, 2.0]), 2.0, 6.0)


def renders_equal(a: ModelPair, b: ModelPair) -> bool:
    ra, rb = render_chunked(a, probe_rays(), SETTINGS), render_chunked(b, probe_rays(), SETTINGS)
    return all(torch.equal(ra[k], rb[k]) for k in ("rgb", "depth", "acc"))


def nerf_pytorch_tar(pair: ModelPair, path) -> None:
    """What nerf-pytorch's run_nerf.py writes: four entries, no config."""
    params = list(pair.coarse.parameters()) + list(pair.fine.parameters())
    optimizer = torch.optim.Adam(params, lr=5e-4)
    torch.save({"global_step": 200000, "network_fn_state_dict": pair.coarse.state_dict(),
                "network_fine_state_dict": pair.fine.state_dict(),
                "optimizer_state_dict": optimizer.state_dict()}, path)


def test_round_trip_keeps_weights_config_and_meta(tmp_path):
    pair = ModelPair.create(TINY, seed=3)
    path = save_checkpoint(tmp_path / "m.pt", pair, global_step=42, meta={"scene": "object"})
    loaded = load_checkpoint(path)
    assert loaded.config == TINY
    assert loaded.meta["global_step"] == 42 and loaded.meta["scene"] == "object"
    for name in ("coarse", "fine"):
        for k, v in getattr(pair, name).state_dict().items():
            assert torch.equal(getattr(loaded, name).state_dict()[k], v)
    assert renders_equal(pair, loaded)


def test_round_trip_with_different_fine_config(tmp_path):
    fine = NeRFConfig(depth=2, width=16, skips=(), multires=4, multires_views=2, view_width=8)
    pair = ModelPair.create(TINY, fine_config=fine)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.pt", pair))
    assert loaded.fine.config == fine
    assert renders_equal(pair, loaded)


def test_coarse_only_round_trip(tmp_path):
    pair = ModelPair.create(TINY, with_fine=False)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.pt", pair))
    assert loaded.fine is None


def test_nerf_pytorch_tar_loads_via_infer_config_and_renders_identically(tmp_path):
    pair = ModelPair.create(TINY, seed=1)
    path = tmp_path / "200000.tar"
    nerf_pytorch_tar(pair, path)
    loaded = load_checkpoint(path)
    assert loaded.config == TINY and loaded.fine.config == TINY
    assert loaded.meta["global_step"] == 200000
    assert renders_equal(pair, loaded)


@pytest.mark.parametrize("config", [
    NeRFConfig(),
    NeRFConfig(use_viewdirs=False),
    NeRFConfig(depth=4, width=64, skips=(1, 2), multires=6, multires_views=3, view_width=32,
               hidden_widths=(64, 48, 32, 64), feature_width=40),
    NeRFConfig(depth=2, width=8, skips=(), multires=0, multires_views=0, view_width=4),
])
def test_infer_config_recovers_the_sizes(config):
    assert infer_config(NeRF(config).state_dict(), "test") == config


def test_skip_after_the_last_layer_is_inferred():
    config = NeRFConfig(depth=3, width=16, skips=(2,), multires=2, multires_views=1, view_width=8)
    assert infer_config(NeRF(config).state_dict(), "test") == config


def test_nan_weights_are_refused(tmp_path):
    pair = ModelPair.create(TINY)
    with torch.no_grad():
        pair.fine.pts_linears[1].weight[0, 0] = float("nan")
    path = save_checkpoint(tmp_path / "nan.pt", pair)
    with pytest.raises(CheckpointError, match=r"nan\.pt.*pts_linears\.1\.weight.*NaN"):
        load_checkpoint(path)


def test_wrong_shape_is_refused(tmp_path):
    pair = ModelPair.create(TINY)
    obj = torch.load(save_checkpoint(tmp_path / "m.pt", pair), weights_only=True)
    obj["network_fn_state_dict"]["alpha_linear.weight"] = torch.zeros(1, 5)
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt.*alpha_linear\.weight.*shape"):
        load_checkpoint(tmp_path / "bad.pt")


def test_wrong_layout_without_config_is_refused(tmp_path):
    state = NeRF(TINY).state_dict()
    del state["feature_linear.weight"]
    torch.save({"network_fn_state_dict": state}, tmp_path / "bad.tar")
    with pytest.raises(CheckpointError, match=r"bad\.tar"):
        load_checkpoint(tmp_path / "bad.tar")


@pytest.mark.parametrize("state", [None, [1, 2], {"pts_linears.0.weight": "text"}])
def test_state_that_is_not_a_tensor_dict_is_refused(tmp_path, state):
    torch.save({"network_fn_state_dict": state}, tmp_path / "odd.tar")
    with pytest.raises(CheckpointError, match=r"odd\.tar"):
        load_checkpoint(tmp_path / "odd.tar")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt: no such"):
        load_checkpoint(tmp_path / "nope.pt")


def test_directory(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("content", [b"", b"garbage bytes that are not a checkpoint" * 10,
                                     b"PK\x03\x04 truncated zip"])
def test_garbage_bytes(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"junk\.pt") as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)


def test_any_failure_of_the_unpickler_is_one_line(tmp_path, monkeypatch):
    """torch's weights-only unpickler raises whatever damaged bytes lead it to (a KeyError from its memo
    table, for one); each becomes a one-line CheckpointError naming the file."""
    path = save_checkpoint(tmp_path / "m.pt", ModelPair.create(TINY))

    def damaged(*args, **kwargs):
        raise KeyError(75)

    monkeypatch.setattr(torch, "load", damaged)
    with pytest.raises(CheckpointError, match=r"m\.pt: not a readable torch checkpoint \(75\)") as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"network_fn_state_dict": NotAWeight()}, path)
    with pytest.raises(CheckpointError, match=r"code\.pt.*weights_only") as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)


def test_plain_pickle_file_is_refused(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"network_fn_state_dict": NotAWeight()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"plain\.pkl"):
        load_checkpoint(path)


def test_dict_without_networks_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="network_fn_state_dict"):
        read_checkpoint(tmp_path / "other.pt")


def test_bad_config_entry_is_refused(tmp_path):
    obj = torch.load(save_checkpoint(tmp_path / "m.pt", ModelPair.create(TINY)), weights_only=True)
    obj["config"]["colour"] = 1
    torch.save(obj, tmp_path / "cfg.pt")
    with pytest.raises(CheckpointError, match=r"cfg\.pt.*config"):
        load_checkpoint(tmp_path / "cfg.pt")


def test_atomic_save_refuses_to_overwrite(tmp_path):
    path = atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    before = file_hash(path)
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        atomic_save({"a": torch.zeros(2)}, path)
    assert file_hash(path) == before
    atomic_save({"a": torch.zeros(2)}, path, overwrite=True)
    assert file_hash(path) != before
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]  # no temporary files left behind


def test_save_refuses_non_float_networks(tmp_path):
    pair = ModelPair.create(TINY)
    pair.fine = torch.nn.Sequential(pair.fine)
    with pytest.raises(CheckpointError, match="not a float NeRF"):
        save_checkpoint(tmp_path / "m.pt", pair)


def test_file_hash_is_sha256(tmp_path):
    import hashlib

    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    assert file_hash(p) == hashlib.sha256(b"abc").hexdigest()


def test_weight_that_is_not_a_matrix_is_refused(tmp_path):
    state = NeRF(TINY).state_dict()
    state["pts_linears.1.weight"] = torch.zeros(32)
    torch.save({"network_fn_state_dict": state}, tmp_path / "flat.tar")
    with pytest.raises(CheckpointError, match=r"flat\.tar.*pts_linears\.1\.weight.*2-D"):
        load_checkpoint(tmp_path / "flat.tar")


def test_bad_fine_config_entry_is_refused(tmp_path):
    fine = NeRFConfig(depth=2, width=16, skips=(), multires=4, multires_views=2, view_width=8)
    path = save_checkpoint(tmp_path / "m.pt", ModelPair.create(TINY, fine_config=fine))
    obj = torch.load(path, weights_only=True)
    obj["fine_config"]["depth"] = 0
    torch.save(obj, tmp_path / "fine.pt")
    with pytest.raises(CheckpointError, match=r"fine\.pt.*fine_config"):
        load_checkpoint(tmp_path / "fine.pt")


# --- issue 20 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fine_entry", ["absent", "none"])
def test_nerf_pytorch_tar_without_fine_weights_runs_fine_samples_through_coarse(tmp_path, fine_entry):
    """nerf-pytorch's render_rays uses `network_fn` for the fine samples when there is no fine network."""
    pair = ModelPair.create(TINY, seed=4)
    obj = {"global_step": 7, "network_fn_state_dict": pair.coarse.state_dict()}
    if fine_entry == "none":
        obj["network_fine_state_dict"] = None
    torch.save(obj, tmp_path / "coarse.tar")
    loaded = load_checkpoint(tmp_path / "coarse.tar")
    assert loaded.meta["fine_network"] == "coarse"
    assert loaded.fine is not None and loaded.fine is not loaded.coarse
    for k, v in pair.coarse.state_dict().items():
        assert torch.equal(loaded.fine.state_dict()[k], v)
    assert renders_equal(ModelPair(pair.coarse, pair.coarse, TINY), loaded)


def test_own_format_records_how_fine_samples_render(tmp_path):
    assert load_checkpoint(save_checkpoint(tmp_path / "a.pt", ModelPair.create(TINY))).meta["fine_network"] == "fine"
    coarse_only = load_checkpoint(save_checkpoint(tmp_path / "b.pt", ModelPair.create(TINY, with_fine=False)))
    assert coarse_only.fine is None and coarse_only.meta["fine_network"] == "none"


def test_identical_content_gives_identical_bytes(tmp_path):
    pair = ModelPair.create(TINY, seed=5)
    a = save_checkpoint(tmp_path / "a.pt", pair, global_step=3, meta={"scene": "object"})
    b = save_checkpoint(tmp_path / "sub" / "other-name.pt", pair, global_step=3, meta={"scene": "object"})
    assert file_hash(a) == file_hash(b)
    assert a.read_bytes() == b.read_bytes()


def test_atomic_save_refuses_a_directory_and_an_unwritable_place(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(CheckpointError, match=r"d: is a directory; need a file name"):
        atomic_save({"a": torch.ones(1)}, tmp_path / "d", overwrite=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(CheckpointError, match=r"f/x\.pt: cannot write") as e:
        atomic_save({"a": torch.ones(1)}, tmp_path / "f" / "x.pt")
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


def test_config_asking_for_a_huge_network_is_refused_by_shape(tmp_path):
    obj = torch.load(save_checkpoint(tmp_path / "m.pt", ModelPair.create(TINY)), weights_only=True)
    obj["config"]["width"] = 10 ** 9  # would need terabytes if it were built before the shapes are compared
    torch.save(obj, tmp_path / "huge.pt")
    with pytest.raises(CheckpointError, match=r"huge\.pt \[network_fn_state_dict\]: .*shape"):
        load_checkpoint(tmp_path / "huge.pt")


@pytest.mark.parametrize("key, value, pattern", [
    ("config", [1, 2], r"bad 'config' entry \(a list"),
    ("meta", "scene", r"bad 'meta' entry \(a str"),
    ("meta", torch.zeros(0), r"bad 'meta' entry \(a Tensor"),
    ("global_step", "200k", r"bad 'global_step' entry"),
    ("global_step", torch.zeros(4, 1), r"bad 'global_step' entry \(a Tensor, not an integer\)"),
    ("global_step", torch.tensor(complex("nan+0j")), r"bad 'global_step' entry \(tensor\(nan\+0\.j\), not an integer"),
    ("global_step", torch.tensor(True), r"bad 'global_step' entry \(tensor\(True\), not an integer"),
    ("config", {"depth": torch.tensor(2)}, r"bad 'config' entry \(config 'depth' is tensor\(2\), expected an integer"),
    ("config", {"depth": torch.zeros(0)}, r"config 'depth' is tensor\(\[\]\), expected an integer"),
    ("config", {"width": 16.0}, r"config 'width' is 16.0, expected an integer"),
    ("config", {"use_viewdirs": 1}, r"config 'use_viewdirs' is 1, expected true or false"),
    ("config", {"skips": [0.5]}, r"config 'skips' is \[0.5\], expected a list of integers"),
])
def test_wrong_types_of_entries_are_one_line(tmp_path, key, value, pattern):
    obj = torch.load(save_checkpoint(tmp_path / "m.pt", ModelPair.create(TINY)), weights_only=True)
    obj[key] = {**obj[key], **value} if isinstance(value, dict) else value  # a dict changes one config entry
    torch.save(obj, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match=pattern) as e:
        load_checkpoint(tmp_path / "t.pt")
    assert str(e.value).startswith(str(tmp_path / "t.pt")) and "\n" not in str(e.value)
