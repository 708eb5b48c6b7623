"""Compressed models save and load: every kind a registered compressor produces rebuilds bit-identically."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nerf_eval.checkpoint import load_torch_file
from nerf_eval.compress import get_compressor, serialized_size
from nerf_eval.compress.saved import load_any, load_compressed, network_record, save_compressed
from nerf_eval.errors import CheckpointError
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import Rays, RenderSettings

TINY = NeRFConfig(depth=4, width=32, skips=(2,), multires=4, multires_views=2, view_width=16)
SMALL = RenderSettings(n_coarse=8, n_fine=8, chunk=256)
SPECS = ["fp32", "bf16", "int8-ptq-both:64", "int8-ptq-fine:64", "int8-ptq-both:64:heads=fp32", "int8-dynamic",
         "int8-weight-only",
         "int4-weight:8", "prune-activation:0.5:round=1", "prune-activation:0.5:round=1+int8-ptq-both:64"]


def camera_rays(n: int, seed: int = 0) -> Rays:
    g = torch.Generator().manual_seed(seed)
    origins = torch.tensor([0.0, 0.0, 4.0]) + 0.1 * torch.randn(n, 3, generator=g)
    dirs = torch.tensor([0.0, 0.0, -1.0]) + 0.2 * torch.randn(n, 3, generator=g)
    return Rays.from_od(origins, dirs, 2.0, 6.0)


@pytest.fixture(scope="module")
def pair() -> ModelPair:
    return ModelPair.create(TINY, seed=3).eval()


@pytest.mark.parametrize("spec", SPECS)
def test_saved_model_reproduces_the_compressed_outputs(pair, spec, tmp_path):
    small = get_compressor(spec).compress(pair, camera_rays(128))
    path = save_compressed(tmp_path / "m.pt", small, spec)
    loaded = load_compressed(path)
    x = torch.randn(300, pair.coarse.input_ch + pair.coarse.input_ch_views, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        for name, net in small.networks().items():
            assert torch.equal(net(x), loaded.networks()[name](x)), name
            assert network_record(loaded.networks()[name])["kind"] == network_record(net)["kind"]
    assert loaded.meta["compressor"] == spec
    assert serialized_size(loaded) == serialized_size(small)
    assert load_any(path).meta["compressor"] == spec


def test_int8_file_is_smaller_than_float(tmp_path):
    pair = ModelPair.create(NeRFConfig(depth=4, width=128, skips=(2,), multires=4, multires_views=2,
                                       view_width=64), seed=0).eval()
    fp32 = save_compressed(tmp_path / "fp32.pt", pair, "fp32")
    int8 = save_compressed(tmp_path / "int8.pt", get_compressor("int8-ptq-both:64").compress(pair, camera_rays(64)),
                           "int8-ptq-both:64")
    assert int8.stat().st_size < 0.4 * fp32.stat().st_size


def test_unsupported_network_is_one_line_error(pair, tmp_path):
    odd = ModelPair(nn.Sequential(nn.Linear(3, 4)), None, pair.config, {})
    with pytest.raises(CheckpointError, match="no saved-model kind handles it"):
        save_compressed(tmp_path / "odd.pt", odd, "odd")
    assert not (tmp_path / "odd.pt").exists()


def test_tampered_state_is_a_clear_error(pair, tmp_path):
    small = get_compressor("int8-ptq-both:64").compress(pair, camera_rays(64))
    path = save_compressed(tmp_path / "m.pt", small, "int8")
    obj = load_torch_file(path)
    obj["networks"]["fine"]["settings"]["config"]["width"] = 48
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="does not match its recorded structure"):
        load_compressed(tmp_path / "bad.pt")


def test_a_kind_that_is_not_a_name_is_one_line(pair, tmp_path):
    obj = load_torch_file(save_compressed(tmp_path / "m.pt", pair, "fp32"))
    obj["networks"]["coarse"]["kind"] = torch.zeros(4, 1)  # its repr spans four lines
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: coarse network has unknown kind a Tensor$") as e:
        load_any(tmp_path / "bad.pt")
    assert "\n" not in str(e.value)


def test_pair_config_that_encodes_other_inputs_than_the_networks_is_one_line(pair, tmp_path):
    obj = load_torch_file(save_compressed(tmp_path / "m.pt", get_compressor("bf16").compress(pair, camera_rays(8)),
                                          "bf16"))
    obj["config"] = {}  # the vanilla NeRF's encoding (63+27 inputs), not these networks' (27+15)
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: the coarse network takes 27\+15 encoded inputs, but the "
                                              r"'config' entry encodes 63\+27") as e:
        load_any(tmp_path / "bad.pt")
    assert "\n" not in str(e.value)


def test_quantization_scale_out_of_range_is_a_clear_error(pair, tmp_path):
    path = save_compressed(tmp_path / "m.pt", get_compressor("int8-dynamic").compress(pair, camera_rays(64)),
                           "int8-dynamic")
    obj = load_torch_file(path)
    state = obj["networks"]["coarse"]["state"]
    key = next(k for k in state if k.endswith(".scale"))
    state[key] = 10 ** 400  # a float() of it overflows inside torch's loader
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: coarse network does not match its recorded structure") as e:
        load_any(tmp_path / "bad.pt")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("spec", ["bf16", "int8-ptq-both:64", "int8-dynamic", "int4-weight:8",
                                  "prune-activation:0.5:round=1"])
def test_identical_content_gives_identical_bytes(pair, spec, tmp_path):
    """The sha256 of a compressed file keys caches and model cards: it must not depend on the file's name
    (torch names the zip members after the file unless it writes to memory) or on when it was written."""
    from nerf_eval.checkpoint import file_hash

    small = get_compressor(spec).compress(pair, camera_rays(128))
    a = save_compressed(tmp_path / "a.pt", small, spec, source={"sha256": "x"})
    b = save_compressed(tmp_path / "elsewhere" / "b.pt", small, spec, source={"sha256": "x"})
    assert file_hash(a) == file_hash(b)
    assert b"archive/" in a.read_bytes()[:100]  # the fixed zip member prefix
    c = save_compressed(tmp_path / "c.pt", load_compressed(a), spec, source={"sha256": "x"})
    assert file_hash(c) == file_hash(a)  # saved again after loading: the same bytes
