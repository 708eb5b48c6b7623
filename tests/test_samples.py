"""The `samples` accelerator: sample caps carried by the pair, applied by the renderer, saved with the model,
composed before `occupancy` so that the grid is baked for the samples it serves."""

from __future__ import annotations

import pytest
import torch

from nerf_eval.checkpoint import load_torch_file
from nerf_eval.compress import get_compressor
from nerf_eval.compress.saved import load_compressed, save_compressed
from nerf_eval.errors import CheckpointError, CompressorError
from nerf_eval.render import SAMPLES_KEY, Rays, RenderSettings, SampleCaps, capped_settings, render_chunked
from pytest_nerfcompress.testing import tiny_pair

SETTINGS = RenderSettings(n_coarse=16, n_fine=32, chunk=256)


def rays(n: int = 64) -> Rays:
    g = torch.Generator().manual_seed(0)
    o = torch.randn(n, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 4.0])
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    return Rays.from_od(o, d, 2.0, 6.0)


def test_caps_lower_the_counts_asked_for_and_never_raise_them():
    caps = SampleCaps(n_fine=8)
    assert capped_settings(tiny_pair(), SETTINGS) is SETTINGS  # no caps, nothing changes
    assert caps.apply(SETTINGS) == RenderSettings(n_coarse=16, n_fine=8, chunk=256)
    assert caps.apply(RenderSettings(n_fine=4)).n_fine == 4  # an explicitly smaller request holds
    assert SampleCaps(n_coarse=8, n_fine=0).apply(SETTINGS) == RenderSettings(n_coarse=8, n_fine=0, chunk=256)
    for bad in ({"n_coarse": 2}, {"n_fine": -1}, {"n_fine": 1.5}, {"n_fine": True}):
        with pytest.raises(ValueError, match="sample cap"):
            SampleCaps(**bad)


def test_a_capped_pair_renders_as_the_settings_with_those_counts_do():
    pair, r = tiny_pair(), rays()
    capped = get_compressor("samples:8:coarse=12").compress(pair, r)
    assert capped.meta[SAMPLES_KEY] == SampleCaps(12, 8)
    assert pair.meta.get(SAMPLES_KEY) is None and capped.coarse is not pair.coarse  # the input is left alone
    got = render_chunked(capped, r, SETTINGS)
    want = render_chunked(pair, r, RenderSettings(n_coarse=12, n_fine=8, chunk=256))
    plain = render_chunked(pair, r, SETTINGS)
    assert torch.equal(got["rgb"], want["rgb"]) and torch.equal(got["depth"], want["depth"])
    assert not torch.equal(got["rgb"], plain["rgb"])  # the caps did change the render


def test_composed_caps_tighten_and_the_grid_after_them_serves_the_capped_samples():
    pair, r = tiny_pair(), rays(256)
    both = get_compressor("samples:8+samples:16:coarse=8").compress(pair, r)
    assert both.meta[SAMPLES_KEY] == SampleCaps(8, 8)
    grid = get_compressor("samples:8+occupancy:8").compress(pair, r).meta["occupancy"]
    assert grid.info["samples"] == [64, 8]  # baked for 64 coarse (default settings) and the capped 8 fine


def test_caps_are_saved_with_the_model_and_checked_on_load(tmp_path):
    pair, r = tiny_pair(), rays()
    capped = get_compressor("samples:8+int8-ptq-both").compress(pair, r)
    path = save_compressed(tmp_path / "m.pt", capped, "samples:8+int8-ptq-both")
    loaded = load_compressed(path)
    assert loaded.meta[SAMPLES_KEY] == SampleCaps(None, 8)
    assert torch.equal(render_chunked(loaded, r, SETTINGS)["rgb"], render_chunked(capped, r, SETTINGS)["rgb"])
    obj = load_torch_file(path)
    obj[SAMPLES_KEY] = {"n_fine": -3}
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: bad sample caps"):
        load_compressed(tmp_path / "bad.pt")


@pytest.mark.parametrize("name", ["samples:coarse=2", "samples:-1", "samples:fine=x"])
def test_bad_names_are_one_line_errors(name):
    with pytest.raises(CompressorError):
        get_compressor(name)


def test_every_meta_entry_saved_with_a_pair_has_a_reader():
    from nerf_eval.compress.base import SAVED_META
    from nerf_eval.compress.saved import META_READERS

    assert set(META_READERS) == set(SAVED_META)
