"""Laws of structured pruning over random NeRF configs, ratios and importance scores (hypothesis)."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerf_eval.compress.prune import dependency_graph, plan_keep, prune_network, record_activations
from nerf_eval.model import NeRF, NeRFConfig, count_parameters

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def nerf_configs(draw) -> NeRFConfig:
    """Small NeRF configs: depth 2-5, per-layer widths 8-48, any skip positions, view branch on or off."""
    depth = draw(st.integers(2, 5))
    widths = tuple(draw(st.lists(st.integers(8, 48), min_size=depth, max_size=depth)))
    skips = tuple(sorted(draw(st.sets(st.integers(0, depth - 1), max_size=depth))))
    return NeRFConfig(depth=depth, width=widths[0], skips=skips, multires=draw(st.integers(0, 3)),
                      multires_views=draw(st.integers(0, 2)), use_viewdirs=draw(st.booleans()),
                      view_width=draw(st.integers(4, 24)), hidden_widths=widths,
                      feature_width=draw(st.integers(4, 24)))


def prune_ratios() -> st.SearchStrategy[float]:
    return st.floats(0.0, 1.0, exclude_max=True, allow_nan=False)


def round_multiples() -> st.SearchStrategy[int]:
    return st.sampled_from([1, 1, 4, 16])


def scopes() -> st.SearchStrategy[str]:
    return st.sampled_from(["layer", "global"])


@st.composite
def importance_scores(draw, config: NeRFConfig, views: bool) -> dict[str, torch.Tensor]:
    """Random scores (ties included) for every prunable layer of `config`."""
    out = {}
    for prod in dependency_graph(config, views):
        vals = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0.0, 10.0), min_size=prod.width,
                             max_size=prod.width))
        out[prod.layer] = torch.tensor(vals, dtype=torch.float32)
    return out


@st.composite
def pruning_cases(draw):
    """A seeded network, scores for its prunable layers, and pruning options."""
    config = draw(nerf_configs())
    views = draw(st.booleans())
    torch.manual_seed(draw(st.integers(0, 2**16)))
    net = NeRF(config).eval()
    return net, draw(importance_scores(config, views)), draw(prune_ratios()), draw(scopes()), draw(round_multiples())


def encoded_inputs(config: NeRFConfig, n: int = 17, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, config.input_ch + config.input_ch_views, generator=g)


@PROPERTY_SETTINGS
@given(pruning_cases())
def test_every_layer_in_features_equal_its_producers_out_features(case):
    net, scores, ratio, scope, round_to = case
    pruned = prune_network(net, plan_keep(scores, ratio, scope, round_to))
    cfg = pruned.config
    for i, layer in enumerate(pruned.pts_linears):
        producer_out = pruned.pts_linears[i - 1].out_features if i else 0
        skip = cfg.input_ch if i == 0 or (i - 1) in cfg.skips else 0
        assert layer.in_features == producer_out + skip
    trunk_out = pruned.pts_linears[-1].out_features + (cfg.input_ch if cfg.depth - 1 in cfg.skips else 0)
    heads = ["alpha_linear", "feature_linear"] if cfg.use_viewdirs else ["output_linear"]
    for name in heads:
        assert getattr(pruned, name).in_features == trunk_out
    if cfg.use_viewdirs:
        views_in = pruned.views_linears[0].in_features
        assert views_in == pruned.feature_linear.out_features + cfg.input_ch_views
        assert pruned.rgb_linear.in_features == pruned.views_linears[0].out_features


@PROPERTY_SETTINGS
@given(pruning_cases())
def test_pruned_model_returns_outputs_of_the_original_shape(case):
    net, scores, ratio, scope, round_to = case
    x = encoded_inputs(net.config)
    pruned = prune_network(net, plan_keep(scores, ratio, scope, round_to))
    assert type(pruned) is NeRF
    with torch.inference_mode():
        assert pruned(x).shape == net(x).shape == (x.shape[0], 4)


@PROPERTY_SETTINGS
@given(pruning_cases())
def test_ratio_zero_gives_bit_identical_output(case):
    net, scores, _ratio, scope, round_to = case
    x = encoded_inputs(net.config)
    pruned = prune_network(net, plan_keep(scores, 0.0, scope, round_to))
    with torch.inference_mode():
        assert torch.equal(pruned(x), net(x))
    assert pruned.config.widths == net.config.widths


@st.composite
def networks_with_dead_units(draw):
    """A network where some units of each prunable layer output exactly zero for every input
    (incoming weights zeroed, bias negative, so the ReLU always clips them), and the live units."""
    config = draw(nerf_configs())
    views = draw(st.booleans())
    torch.manual_seed(draw(st.integers(0, 2**16)))
    net = NeRF(config).eval()
    modules = dict(net.named_modules())
    live = {}
    for prod in dependency_graph(config, views):
        dead = draw(st.sets(st.integers(0, prod.width - 1), max_size=prod.width - 1))
        with torch.no_grad():
            for j in dead:
                modules[prod.layer].weight[j] = 0.0
                modules[prod.layer].bias[j] = -draw(st.floats(0.01, 5.0))
        live[prod.layer] = torch.tensor([j for j in range(prod.width) if j not in dead])
    return net, live


@PROPERTY_SETTINGS
@given(networks_with_dead_units())
def test_removing_always_zero_units_leaves_the_output_unchanged(case):
    net, live = case
    x = encoded_inputs(net.config, n=33, seed=1) * 3
    pruned = prune_network(net, live)
    with torch.inference_mode():
        torch.testing.assert_close(pruned(x), net(x), rtol=1e-5, atol=1e-6)


@PROPERTY_SETTINGS
@given(pruning_cases(), prune_ratios())
def test_parameter_count_is_monotone_non_increasing_in_the_ratio(case, other_ratio):
    net, scores, ratio, scope, round_to = case
    low, high = sorted([ratio, other_ratio])
    n_low = count_parameters(prune_network(net, plan_keep(scores, low, scope, round_to)))
    n_high = count_parameters(prune_network(net, plan_keep(scores, high, scope, round_to)))
    assert count_parameters(net) >= n_low >= n_high


@PROPERTY_SETTINGS
@given(pruning_cases())
def test_at_least_one_unit_survives_in_every_layer(case):
    net, scores, ratio, scope, round_to = case
    keep = plan_keep(scores, ratio, scope, round_to)
    assert all(len(k) >= 1 for k in keep.values())
    pruned = prune_network(net, keep)
    assert all(w >= 1 for w in pruned.config.widths)
    assert pruned.config.view_width >= 1


@PROPERTY_SETTINGS
@given(pruning_cases())
def test_kept_units_are_the_highest_scoring(case):
    net, scores, ratio, scope, round_to = case
    for layer, idx in plan_keep(scores, ratio, scope, round_to).items():
        s = scores[layer]
        removed = torch.ones(len(s), dtype=torch.bool)
        removed[idx] = False
        if removed.any():
            assert s[idx].min() >= s[removed].max()


@st.composite
def networks_with_constant_units(draw):
    """A network where some units output a positive constant for every input (incoming weights zeroed,
    bias positive), with those constants, and the remaining units."""
    config = draw(nerf_configs())
    views = draw(st.booleans())
    torch.manual_seed(draw(st.integers(0, 2**16)))
    net = NeRF(config).eval()
    modules = dict(net.named_modules())
    live, fill = {}, {}
    for prod in dependency_graph(config, views):
        constant = draw(st.sets(st.integers(0, prod.width - 1), max_size=prod.width - 1))
        values = torch.zeros(prod.width)
        with torch.no_grad():
            for j in constant:
                modules[prod.layer].weight[j] = 0.0
                modules[prod.layer].bias[j] = values[j] = draw(st.floats(0.01, 2.0))
        live[prod.layer] = torch.tensor([j for j in range(prod.width) if j not in constant])
        fill[prod.layer] = values
    return net, live, fill


@PROPERTY_SETTINGS
@given(networks_with_constant_units())
def test_removing_constant_units_with_their_value_folded_into_consumers_leaves_the_output_unchanged(case):
    net, live, fill = case
    x = encoded_inputs(net.config, n=33, seed=2) * 3
    pruned = prune_network(net, live, fill)
    with torch.inference_mode():
        torch.testing.assert_close(pruned(x), net(x), rtol=1e-4, atol=1e-5)


@st.composite
def networks_with_duplicate_units(draw):
    """A network where some units copy another unit's incoming weights and bias (so they always output the
    same value), with the units to keep (one of each copy group)."""
    config = draw(nerf_configs())
    torch.manual_seed(draw(st.integers(0, 2**16)))
    net = NeRF(config).eval()
    modules = dict(net.named_modules())
    keep = {}
    for prod in dependency_graph(config, views=draw(st.booleans())):
        copies = draw(st.sets(st.integers(1, prod.width - 1), max_size=prod.width - 1))
        layer = modules[prod.layer]
        with torch.no_grad():
            for j in copies:
                src = draw(st.integers(0, prod.width - 1).filter(lambda i: i not in copies))
                layer.weight[j] = layer.weight[src]
                layer.bias[j] = layer.bias[src]
        keep[prod.layer] = torch.tensor([j for j in range(prod.width) if j not in copies])
    return net, keep


@PROPERTY_SETTINGS
@given(networks_with_duplicate_units())
def test_least_squares_repair_removes_duplicate_units_without_changing_the_output_on_its_data(case):
    """Exact on the calibration inputs; elsewhere only if the data pins the regression down (units active
    on every calibration point are collinear there, so the minimum-norm fit may not be the copy)."""
    net, keep = case
    x = encoded_inputs(net.config, n=257, seed=3) * 2
    with torch.inference_mode(), record_activations(net, list(keep), gram=True) as stats:
        net(x)
    pruned = prune_network(net, keep, moments={k: s.second_moment() for k, s in stats.items()})
    with torch.inference_mode():
        torch.testing.assert_close(pruned(x), net(x), rtol=1e-4, atol=1e-4)
