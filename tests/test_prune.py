"""Structured pruning: dependency graph, scoring rules, compressor names, errors, checkpoints, fine-tune."""

from __future__ import annotations

import math

import pytest
import torch

from nerf_eval.checkpoint import load_checkpoint, save_checkpoint
from nerf_eval.compress import available, get_compressor, serialized_size
from nerf_eval.compress.cast import cast_pair
from nerf_eval.compress.finetune import finetune
from nerf_eval.compress.prune import (RULES, Consumer, PruneCompressor, UnitStats, dependency_graph, kept_width,
                                     obs_scores, plan_keep, prune_network, record_activations, weight_scores)
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair, NeRF, NeRFConfig, count_parameters
from nerf_eval.render import Rays, RenderSettings, render_chunked
from nerf_eval.scenes import make_scene

TINY = NeRFConfig(depth=3, width=32, skips=(1,), multires=4, multires_views=2, view_width=16)
FAST = RenderSettings(n_coarse=8, n_fine=8, chunk=64)


def small_rays(n: int = 48, seed: int = 0) -> Rays:
    """Rays from z = 4 looking down at the origin, with spread (near 2, far 6)."""
    g = torch.Generator().manual_seed(seed)
    o = torch.randn(n, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, 4.0])
    d = torch.randn(n, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, -1.0])
    return Rays.from_od(o, d, 2.0, 6.0)


@pytest.fixture
def pair() -> ModelPair:
    return ModelPair.create(TINY, seed=0).eval()


def compressor(spec: str) -> PruneCompressor:
    comp = get_compressor(spec)
    comp.settings = FAST
    return comp


def outputs(p: ModelPair, rays: Rays) -> torch.Tensor:
    return render_chunked(p, rays, FAST)["rgb"]


# ---------------------------------------------------------------- dependency graph and slicing

def test_graph_offsets_skip_consumers_by_the_encoded_input_width():
    cfg = NeRFConfig(depth=4, width=16, skips=(1, 3), multires=2, multires_views=1, view_width=8)
    graph = {p.layer: p for p in dependency_graph(cfg, views=True)}
    assert graph["pts_linears.0"].consumers == (Consumer("pts_linears.1", 0),)
    assert graph["pts_linears.1"].consumers == (Consumer("pts_linears.2", cfg.input_ch),)
    assert graph["pts_linears.3"].consumers == (Consumer("alpha_linear", cfg.input_ch),
                                                Consumer("feature_linear", cfg.input_ch))
    assert graph["views_linears.0"].consumers == (Consumer("rgb_linear", 0),)
    assert "views_linears.0" not in {p.layer for p in dependency_graph(cfg, views=False)}


def test_graph_without_view_branch_feeds_output_linear():
    cfg = NeRFConfig(depth=2, width=16, skips=(), multires=2, use_viewdirs=False)
    graph = dependency_graph(cfg, views=True)
    assert [p.layer for p in graph] == ["pts_linears.0", "pts_linears.1"]
    assert graph[-1].consumers == (Consumer("output_linear", 0),)


def test_slicing_moves_exactly_the_kept_rows_and_columns(pair):
    net = pair.coarse
    keep = {"pts_linears.1": torch.tensor([0, 5, 7]), "pts_linears.2": torch.tensor([2, 3])}
    small = prune_network(net, keep)
    ic = TINY.input_ch
    assert torch.equal(small.pts_linears[1].weight, net.pts_linears[1].weight[[0, 5, 7]])
    assert torch.equal(small.pts_linears[1].bias, net.pts_linears[1].bias[[0, 5, 7]])
    expected_cols = list(range(ic)) + [ic + 0, ic + 5, ic + 7]  # skip after layer 1: cat([input_pts, h])
    assert torch.equal(small.pts_linears[2].weight, net.pts_linears[2].weight[[2, 3]][:, expected_cols])
    assert torch.equal(small.alpha_linear.weight, net.alpha_linear.weight[:, [2, 3]])
    assert torch.equal(small.feature_linear.weight, net.feature_linear.weight[:, [2, 3]])
    assert small.config.widths == (32, 3, 2)
    assert torch.equal(net.pts_linears[1].weight, pair.coarse.pts_linears[1].weight)  # source untouched


def test_view_branch_pruning_slices_rgb_linear(pair):
    small = prune_network(pair.coarse, {"views_linears.0": torch.tensor([1, 4])})
    assert small.config.view_width == 2
    assert torch.equal(small.rgb_linear.weight, pair.coarse.rgb_linear.weight[:, [1, 4]])


def test_least_squares_repair_is_the_best_fit_of_the_consumer_on_the_calibration_data(pair):
    """Pruning one layer: the next layer's pre-activations on the calibration inputs are matched best by the
    least-squares refit, then by mean filling, then by plain removal (each optimises over more)."""
    net = pair.coarse
    x = torch.randn(400, TINY.input_ch + TINY.input_ch_views, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode(), record_activations(net, ["pts_linears.0"], gram=True) as stats:
        net(x)
    keep = {"pts_linears.0": torch.arange(0, 32, 3)}
    fill = {"pts_linears.0": stats["pts_linears.0"].mean()}
    moments = {"pts_linears.0": stats["pts_linears.0"].second_moment()}

    def consumer_error(small: NeRF) -> float:
        h = torch.relu(net.pts_linears[0](x[:, :TINY.input_ch]))
        h_small = torch.relu(small.pts_linears[0](x[:, :TINY.input_ch]))
        return float(((small.pts_linears[1](h_small) - net.pts_linears[1](h)) ** 2).mean())

    with torch.inference_mode():
        errors = [consumer_error(prune_network(net, keep, **kw)) for kw in
                  ({}, {"fill": fill}, {"moments": moments})]
    assert errors[2] < errors[1] < errors[0]


def test_moment_must_match_the_layer_width(pair):
    with pytest.raises(CompressorError, match=r"moment has shape \(3, 3\), expected \(33, 33\)"):
        prune_network(pair.coarse, {"pts_linears.0": torch.tensor([0, 1])}, moments={"pts_linears.0": torch.eye(3)})


def test_fill_must_have_one_value_per_unit(pair):
    with pytest.raises(CompressorError, match="fill has 3 values for 32 units"):
        prune_network(pair.coarse, {"pts_linears.0": torch.tensor([0, 1])}, {"pts_linears.0": torch.ones(3)})


def test_mean_repair_folds_removed_means_into_consumer_biases(pair):
    rays = small_rays()
    plain = compressor("prune-activation:0.5:round=1").compress(pair, rays)
    comp = compressor("prune-activation:0.5:round=1:repair=mean").compress(pair, rays)
    assert comp.meta["pruning"]["repair"] == "mean" and plain.meta["pruning"]["repair"] == "none"
    assert torch.equal(comp.coarse.pts_linears[1].weight, plain.coarse.pts_linears[1].weight)
    assert not torch.equal(comp.coarse.pts_linears[1].bias, plain.coarse.pts_linears[1].bias)
    assert torch.equal(comp.coarse.pts_linears[0].bias, plain.coarse.pts_linears[0].bias)


@pytest.mark.parametrize("keep, message", [
    ({"pts_linears.9": torch.tensor([0])}, "not a prunable layer"),
    ({"pts_linears.0": torch.tensor([], dtype=torch.long)}, "kept units"),
    ({"pts_linears.0": torch.tensor([0, 0])}, "distinct"),
    ({"pts_linears.0": torch.tensor([32])}, "kept units"),
])
def test_bad_keep_sets_are_refused(pair, keep, message):
    with pytest.raises(CompressorError, match=message):
        prune_network(pair.coarse, keep)


# ---------------------------------------------------------------- widths

@pytest.mark.parametrize("ratio, kept", [(0.0, 256), (0.15, 224), (0.3, 176), (0.5, 128), (0.85, 32)])
def test_kept_width_rounds_to_multiples_of_16(ratio, kept):
    assert kept_width(256, ratio) == kept


def test_kept_width_without_rounding_and_at_the_edges():
    assert kept_width(256, 0.3, round_to=1) == 179
    assert kept_width(40, 0.0) == 40
    assert kept_width(40, 0.01) == 40  # the full width counts as a candidate
    assert kept_width(8, 0.99) == 8  # narrower than one multiple: nothing to round to but itself
    assert kept_width(8, 0.99, round_to=1) == 1


def test_global_scope_takes_more_from_the_layer_with_weaker_scores():
    scores = {"a": torch.tensor([1.0, 1.0, 1.0, 1.0]), "b": torch.tensor([1.0, 0.01, 0.02, 4.0])}
    keep = plan_keep(scores, 0.25, scope="global", round_to=1)
    assert [len(v) for v in keep.values()] == [4, 2]
    assert keep["b"].tolist() == [0, 3]


# ---------------------------------------------------------------- scoring

def test_hooks_record_post_relu_activations(pair):
    net = pair.coarse
    x = torch.randn(50, TINY.input_ch + TINY.input_ch_views)
    with torch.inference_mode(), record_activations(net, ["pts_linears.0", "views_linears.0"]) as stats:
        net(x)
    h0 = torch.relu(net.pts_linears[0](x[:, :TINY.input_ch]))
    torch.testing.assert_close(stats["pts_linears.0"].mean(), h0.mean(0).detach())
    torch.testing.assert_close(stats["pts_linears.0"].variance(), h0.var(0, unbiased=False).detach(),
                               atol=1e-6, rtol=1e-4)
    assert stats["views_linears.0"].count == 50
    assert not net._forward_hooks and not net.pts_linears[0]._forward_hooks


def test_entropy_is_zero_for_constant_units_and_grows_with_spread():
    s = UnitStats(3)
    a = torch.stack([torch.zeros(200), torch.full((200,), 2.0), torch.linspace(0, 1, 200)], 1)
    s.add(a)
    s.start_histogram()
    s.add(a)
    ent = s.entropy()
    assert ent[0] == 0 and ent[1] == 0
    assert ent[2] == pytest.approx(math.log(32), rel=0.05)


def test_weight_out_scores_read_the_consumer_columns_at_the_skip_offset(pair):
    net = prune_network(pair.coarse, {})
    with torch.no_grad():
        net.pts_linears[2].weight[:, TINY.input_ch + 4] = 0.0  # unit 4 of layer 1, read after cat([pts, h])
        net.pts_linears[2].weight[:, 4] = 100.0  # an encoded-input column: must not count for unit 4
    scores = weight_scores(net, "weight-out", dependency_graph(TINY))
    assert scores["pts_linears.1"][4] == 0
    assert scores["pts_linears.1"].argmin() == 4


def test_obs_order_removes_copies_and_dead_units_first():
    torch.manual_seed(0)
    a = torch.relu(torch.randn(500, 6))
    a[:, 4] = a[:, 1]  # a copy: the consumer can take it over exactly
    a[:, 5] = 0.0  # dead
    stats = UnitStats(6, gram=True)
    stats.add(a)
    scores = obs_scores(torch.randn(5, 6), stats.second_moment())
    assert sorted(scores.tolist()) == list(range(6))
    assert set(scores.argsort()[:2].tolist()) in ({1, 5}, {4, 5})


def test_obs_compressor_refits_by_default(pair):
    comp = compressor("prune-activation-obs:0.5:round=1")
    assert comp.repair == "lsq" and comp.gates == {}
    assert get_compressor("prune-activation-obs:0.3").gates == {"psnr_drop": 1.0}
    small = comp.compress(pair, small_rays())
    assert small.coarse.config.widths == (16, 16, 16) and small.meta["pruning"]["repair"] == "lsq"


def test_random_scores_are_seeded(pair):
    a = get_compressor("prune-random:0.5:round=1:seed=3").compress(pair, small_rays())
    b = get_compressor("prune-random:0.5:round=1:seed=3").compress(pair, small_rays())
    c = get_compressor("prune-random:0.5:round=1:seed=4").compress(pair, small_rays())
    assert torch.equal(a.coarse.pts_linears[0].weight, b.coarse.pts_linears[0].weight)
    assert not torch.equal(a.coarse.pts_linears[0].weight, c.coarse.pts_linears[0].weight)


def test_activation_pruning_removes_units_dead_on_the_calibration_rays(pair):
    with torch.no_grad():
        for net in pair.networks().values():
            net.pts_linears[1].weight[:9] = 0.0
            net.pts_linears[1].bias[:9] = -1.0
    pruned = compressor("prune-activation:0.25:round=1").compress(pair, small_rays())
    assert pruned.coarse.config.widths[1] == 24
    torch.testing.assert_close(pruned.coarse.pts_linears[1].bias, pair.coarse.pts_linears[1].bias[8:])


# ---------------------------------------------------------------- the compressors

def test_registry_lists_the_default_ratios():
    names = available()
    for n in ["prune-activation:0.15", "prune-activation:0.3", "prune-activation:0.5", "prune-activation:0.85",
              "prune-activation-var:0.3", "prune-activation-entropy:0.3", "prune-weight-in:0.3",
              "prune-weight-out:0.3", "prune-random:0.3", "prune-activation-obs:0.3"]:
        assert n in names
    assert get_compressor("prune-activation:0.3").gates == {"psnr_drop": 1.0}
    assert get_compressor("prune-activation:.30").name == "prune-activation:0.3"


@pytest.mark.parametrize("spec", ["prune-activation:0.3:views", "prune-activation-var:0.5:global",
                                  "prune-activation-entropy:0.3:round=4", "prune-weight-in:0.3",
                                  "prune-weight-out:0.85:global:round=1", "prune-random:0.15:round=1"])
def test_every_rule_gives_a_smaller_working_pair(pair, spec):
    rays = small_rays()
    before = {k: v.clone() for k, v in pair.coarse.state_dict().items()}
    small = compressor(spec).compress(pair, rays)
    assert isinstance(small.coarse, NeRF) and isinstance(small.fine, NeRF)
    assert count_parameters(small.coarse) < count_parameters(pair.coarse)
    assert serialized_size(small) < serialized_size(pair)
    out = outputs(small, rays[:5])
    assert out.shape == (5, 3) and torch.isfinite(out).all()
    assert all(torch.equal(v, pair.coarse.state_dict()[k]) for k, v in before.items())
    assert small.meta["pruning"]["compressor"] == spec


def test_thirty_percent_shrinks_rows_and_columns_of_every_hidden_layer():
    cfg = NeRFConfig(depth=4, width=64, skips=(2,), multires=2, multires_views=1, view_width=16)
    p = ModelPair.create(cfg, seed=1).eval()
    small = compressor("prune-activation:0.3").compress(p, small_rays(16))
    assert small.coarse.config.widths == (48,) * 4  # 64 * 0.7 = 44.8 -> 48
    hidden = [tuple(small.coarse.pts_linears[i].weight.shape) for i in (1, 2, 3)]
    assert hidden == [(48, 48), (48, 48), (48, 48 + cfg.input_ch)]


def test_per_network_ratio_prunes_each_network_by_its_own_share(pair):
    out = compressor("prune-activation:0.5:round=1:coarse=0").compress(pair, small_rays())
    assert out.coarse.config.widths == pair.coarse.config.widths
    assert all(w == 16 for w in out.fine.config.widths[:TINY.depth])
    assert out.meta["pruning"]["ratios"] == {"coarse": 0.0, "fine": 0.5}
    x = torch.randn(20, pair.coarse.input_ch + pair.coarse.input_ch_views)
    with torch.inference_mode():
        assert torch.equal(out.coarse(x), pair.coarse(x))


def test_ratio_zero_compressor_renders_bit_identically(pair):
    rays = small_rays()
    small = compressor("prune-activation:0:round=1").compress(pair, rays)
    assert torch.equal(outputs(small, rays), outputs(pair, rays))


@pytest.mark.parametrize("spec, message", [
    ("prune-activation:1.0", r"ratio must be in \[0, 1\)"),
    ("prune-activation:-0.1", r"ratio must be in \[0, 1\)"),
    ("prune-activation:nan", r"ratio must be in \[0, 1\)"),
    ("prune-activation:abc", "not a number"),
    ("prune-activation", "give the share"),
    ("prune-weight-in:0.3:sideways", "unknown option"),
    ("prune-weight-in:0.3:round=0", "round_to must be >= 1"),
    ("prune-weight-in:0.3:repair=magic", "unknown repair 'magic'"),
    ("prune-weight-in:0.3:coarse=1", r"ratio must be in \[0, 1\)"),
    ("prune-weight-in:0.3:fine=x", "unknown option"),
])
def test_bad_names_give_one_line_errors(spec, message):
    with pytest.raises(CompressorError, match=message) as err:
        get_compressor(spec)
    assert "\n" not in str(err.value)


def test_unknown_rule_and_scope_are_refused():
    with pytest.raises(CompressorError, match="unknown scoring rule 'magic'"):
        PruneCompressor("p", rule="magic")
    with pytest.raises(CompressorError, match="unknown scope"):
        PruneCompressor("p", rule=RULES[0], scope="sideways")


def test_empty_or_nan_calibration_is_refused(pair):
    rays = small_rays()
    with pytest.raises(CompressorError, match="empty calibration"):
        compressor("prune-activation:0.3").compress(pair, rays[:0])
    bad = Rays(rays.origins.clone(), rays.directions, rays.viewdirs, rays.near, rays.far)
    bad.origins[3, 1] = float("nan")
    with pytest.raises(CompressorError, match="NaN or inf in origins"):
        compressor("prune-activation-entropy:0.3").compress(pair, bad)


def test_nan_weights_give_a_clear_error(pair):
    with torch.no_grad():
        pair.coarse.pts_linears[0].bias[0] = float("nan")
    with pytest.raises(CompressorError, match="NaN or inf activations"):
        compressor("prune-activation:0.3").compress(pair, small_rays())


def test_a_model_that_is_not_a_nerf_mlp_is_refused(pair):
    with pytest.raises(CompressorError, match="CastNetwork is not a NeRF MLP"):
        compressor("prune-weight-in:0.3").compress(cast_pair(pair, torch.bfloat16), small_rays())
    seq = ModelPair(torch.nn.Sequential(torch.nn.Linear(4, 4)), None, TINY)
    with pytest.raises(CompressorError, match="Sequential is not a NeRF MLP"):
        compressor("prune-activation:0.3").compress(seq, small_rays())


# ---------------------------------------------------------------- checkpoints and fine-tune

def test_pruned_pair_round_trips_through_a_checkpoint(pair, tmp_path):
    rays = small_rays()
    small = compressor("prune-weight-out:0.5:global:round=1").compress(pair, rays)
    assert small.coarse.config != small.fine.config  # global scope: the two networks differ
    path = save_checkpoint(tmp_path / "pruned.pt", small)
    back = load_checkpoint(path)
    assert back.coarse.config == small.coarse.config and back.fine.config == small.fine.config
    assert torch.equal(outputs(back, rays), outputs(small, rays))


@pytest.fixture(scope="module")
def tiny_scene():
    scene, _ = make_scene("object", size=6)
    return scene


def test_finetune_trains_a_copy_and_keeps_its_widths(pair, tiny_scene):
    small = compressor("prune-activation:0.5:round=1").compress(pair, small_rays())
    before = {k: v.clone() for k, v in small.coarse.state_dict().items()}
    tuned = finetune(small, tiny_scene, steps=2, batch_rays=16, n_coarse=4, n_fine=4, lr=1e-3)
    assert tuned.coarse.config == small.coarse.config
    assert all(torch.equal(v, small.coarse.state_dict()[k]) for k, v in before.items())
    assert not torch.equal(tuned.coarse.pts_linears[0].weight, small.coarse.pts_linears[0].weight)
    assert tuned.meta["finetune"]["steps"] == 2 and not tuned.coarse.training


def test_finetune_lowers_the_training_loss(tiny_scene):
    p = ModelPair.create(TINY, seed=0).eval()
    rays = tiny_scene.rays_for(tiny_scene.split("train"))
    target = tiny_scene.images[tiny_scene.split("train")].reshape(-1, 3)
    settings = RenderSettings(n_coarse=4, n_fine=4, chunk=4096)

    def mse(m: ModelPair) -> float:
        return float(((render_chunked(m, rays, settings)["rgb"] - target) ** 2).mean())

    tuned = finetune(p, tiny_scene, steps=15, batch_rays=64, n_coarse=4, n_fine=4, lr=3e-3, bf16=False)
    assert mse(tuned) < mse(p)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")
def test_finetune_on_cuda_returns_a_cpu_model_that_fits_better(tiny_scene):
    p = ModelPair.create(TINY, seed=0).eval()
    rays = tiny_scene.rays_for(tiny_scene.split("train"))
    target = tiny_scene.images[tiny_scene.split("train")].reshape(-1, 3)
    settings = RenderSettings(n_coarse=4, n_fine=4, chunk=4096)
    tuned = finetune(p, tiny_scene, steps=15, batch_rays=64, n_coarse=4, n_fine=4, lr=3e-3, device="cuda")
    assert tuned.device.type == "cpu" and tuned.meta["finetune"]["device"] == "cuda"
    mse = [float(((render_chunked(m, rays, settings)["rgb"] - target) ** 2).mean()) for m in (p, tuned)]
    assert mse[1] < mse[0]


def test_finetune_refuses_bad_input(pair, tiny_scene):
    with pytest.raises(CompressorError, match="steps must be a non-negative integer"):
        finetune(pair, tiny_scene, steps=-1)
    with pytest.raises(CompressorError, match="not a NeRF MLP"):
        finetune(cast_pair(pair, torch.bfloat16), tiny_scene, steps=1)


def test_calibration_statistics_are_recorded_once_per_model_and_rays(pair, monkeypatch):
    """A ratio sweep and several rules reuse one recording; an in-place weight edit invalidates it, and
    cached or not, the pruned models are identical."""
    from nerf_eval.compress.prune import statistics as prune_mod

    monkeypatch.setattr(prune_mod, "STATISTICS_CACHE", prune_mod.StatisticsCache())
    calls = []
    real = prune_mod.calibration_statistics
    monkeypatch.setattr(prune_mod, "calibration_statistics", lambda *a, **k: calls.append(k) or real(*a, **k))
    rays = small_rays()
    first = compressor("prune-activation-obs:0.5:round=1").compress(pair, rays)  # records second moments
    assert len(calls) == 1
    again = compressor("prune-activation-obs:0.5:round=1").compress(pair, rays)
    compressor("prune-activation:0.25:round=1").compress(pair, rays)  # answered by the richer entry
    assert len(calls) == 1
    assert all(torch.equal(a, b) for a, b in zip(first.fine.state_dict().values(), again.fine.state_dict().values()))
    compressor("prune-activation-entropy:0.5:round=1").compress(pair, rays)  # needs histograms: a new pass
    assert len(calls) == 2
    with torch.no_grad():
        pair.fine.pts_linears[0].weight.mul_(2.0)
    edited = compressor("prune-activation-obs:0.5:round=1").compress(pair, rays)
    assert len(calls) == 3
    monkeypatch.setattr(prune_mod, "STATISTICS_CACHE", prune_mod.StatisticsCache())
    fresh = compressor("prune-activation-obs:0.5:round=1").compress(pair, rays)
    assert all(torch.equal(a, b) for a, b in zip(edited.fine.state_dict().values(), fresh.fine.state_dict().values()))
    assert len(calls) == 4
    compressor("prune-activation:0.5:round=1").compress(pair, small_rays())  # equal rays, other tensors
    assert len(calls) == 5
