"""The NeRF MLP: vanilla size, nerf-pytorch parameter names, small and per-layer-width configs."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerf_eval.model import ModelPair, NeRF, NeRFConfig, count_parameters

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)


@st.composite
def nerf_configs(draw):
    """Small NeRF configurations: any depth, skips, encodings, with or without view directions."""
    depth = draw(st.integers(1, 4))
    widths = draw(st.one_of(st.none(), st.tuples(*(st.integers(1, 24),) * depth)))
    return NeRFConfig(depth=depth, width=draw(st.integers(1, 24)),
                      skips=tuple(draw(st.sets(st.integers(0, depth - 1), max_size=2))),
                      multires=draw(st.integers(0, 4)), multires_views=draw(st.integers(0, 3)),
                      use_viewdirs=draw(st.booleans()), view_width=draw(st.integers(1, 16)),
                      hidden_widths=widths, feature_width=draw(st.one_of(st.none(), st.integers(1, 16))))


def test_vanilla_network_has_595844_parameters():
    assert count_parameters(NeRF()) == 595_844


def test_vanilla_pair_has_two_networks_of_595844_parameters():
    pair = ModelPair.create()
    assert [count_parameters(n) for n in pair.networks().values()] == [595_844, 595_844]


def test_nerf_pytorch_parameter_names_and_shapes():
    state = NeRF().state_dict()
    expected = {f"pts_linears.{i}.{p}" for i in range(8) for p in ("weight", "bias")}
    expected |= {f"{m}.{p}" for m in ("views_linears.0", "feature_linear", "alpha_linear", "rgb_linear")
                 for p in ("weight", "bias")}
    assert set(state) == expected
    assert state["pts_linears.0.weight"].shape == (256, 63)
    assert state["pts_linears.5.weight"].shape == (256, 256 + 63)  # skip after layer 4
    assert state["views_linears.0.weight"].shape == (128, 256 + 27)
    assert state["rgb_linear.weight"].shape == (3, 128)


def test_without_view_directions_uses_output_linear():
    net = NeRF(NeRFConfig(use_viewdirs=False))
    names = set(net.state_dict())
    assert "output_linear.weight" in names and "rgb_linear.weight" not in names
    assert net.output_linear.weight.shape == (4, 256)


@given(config=nerf_configs(), n=st.integers(0, 5))
@settings(max_examples=30, deadline=None)
def test_any_small_config_maps_encoded_inputs_to_four_outputs(config, n):
    net = NeRF(config)
    out = net(torch.randn(n, config.input_ch + config.input_ch_views))
    assert out.shape == (n, 4)


@given(config=nerf_configs())
@settings(max_examples=30, deadline=None)
def test_config_round_trips_through_a_dict(config):
    assert NeRFConfig.from_dict(config.to_dict()) == config


def test_per_layer_widths_change_only_those_layers():
    c = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16,
                   hidden_widths=(32, 16, 32))
    net = NeRF(c)
    assert net.pts_linears[1].weight.shape == (16, 32)
    assert net.pts_linears[2].weight.shape == (32, 16 + c.input_ch)


def test_seeded_pairs_are_equal():
    a, b = ModelPair.create(TINY, seed=5), ModelPair.create(TINY, seed=5)
    for (ka, va), (kb, vb) in zip(a.coarse.state_dict().items(), b.coarse.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("kwargs", [dict(depth=0), dict(width=0), dict(depth=2, hidden_widths=(8,)),
                                    dict(depth=2, hidden_widths=(8, 0))])
def test_invalid_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        NeRFConfig(**kwargs)


def test_unknown_config_keys_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        NeRFConfig.from_dict({"depth": 2, "colour": 3})
