"""Stratified and inverse-CDF samples stay sorted and inside their range."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nerf_eval.sampling import sample_pdf, stratified_samples


def bounds(n_rays: int = 4):
    near = torch.linspace(0.5, 2.0, n_rays)
    return near, near + torch.linspace(1.0, 4.0, n_rays)


@st.composite
def bin_edges_and_weights(draw):
    """Sorted, strictly increasing bin edges (R, B+1) and non-negative weights (R, B) along each ray."""
    n_rays = draw(st.integers(1, 4))
    n_bins = draw(st.integers(1, 12))
    gaps = draw(arrays("float64", (n_rays, n_bins), elements=st.floats(1e-3, 2.0)))
    start = draw(arrays("float64", (n_rays, 1), elements=st.floats(0.0, 5.0)))
    weights = draw(arrays("float64", (n_rays, n_bins),
                          elements=st.one_of(st.just(0.0), st.floats(0.0, 10.0))))
    edges = torch.cat([torch.tensor(start), torch.tensor(start) + torch.tensor(gaps).cumsum(-1)], -1)
    return edges.float(), torch.tensor(weights).float()


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 64), lindisp=st.booleans(), perturb=st.booleans(), seed=st.integers(0, 2**31))
def test_stratified_samples_are_sorted_and_inside_near_far(n, lindisp, perturb, seed):
    near, far = bounds()
    z = stratified_samples(near, far, n, perturb, lindisp, torch.Generator().manual_seed(seed))
    assert z.shape == (4, n)
    assert (z[:, 1:] >= z[:, :-1]).all()
    assert (z >= near[:, None] - 1e-6).all() and (z <= far[:, None] + 1e-6).all()


def test_deterministic_stratified_samples_are_the_linspace():
    near, far = bounds()
    z = stratified_samples(near, far, 5)
    torch.testing.assert_close(z[:, 0], near)
    torch.testing.assert_close(z[:, -1], far)
    torch.testing.assert_close(z[1], torch.linspace(float(near[1]), float(far[1]), 5))


def test_perturbed_samples_stay_in_their_bins():
    near, far = bounds(1)
    z0 = stratified_samples(near, far, 8)
    mids = 0.5 * (z0[:, 1:] + z0[:, :-1])
    lower = torch.cat([z0[:, :1], mids], -1)
    upper = torch.cat([mids, z0[:, -1:]], -1)
    z = stratified_samples(near, far, 8, perturb=True, generator=torch.Generator().manual_seed(3))
    assert ((z >= lower) & (z <= upper)).all()
    assert not torch.equal(z, z0)


@settings(max_examples=60, deadline=None)
@given(data=bin_edges_and_weights(), n=st.integers(1, 64), deterministic=st.booleans(), seed=st.integers(0, 2**31))
def test_pdf_samples_are_sorted_and_inside_their_bins_range(data, n, deterministic, seed):
    edges, weights = data
    z = sample_pdf(edges, weights, n, deterministic=deterministic, generator=torch.Generator().manual_seed(seed))
    assert z.shape == (edges.shape[0], n)
    assert torch.isfinite(z).all()
    assert (z[:, 1:] >= z[:, :-1]).all()
    assert (z >= edges[:, :1]).all() and (z <= edges[:, -1:]).all()


def test_pdf_samples_concentrate_where_the_weight_is():
    edges = torch.linspace(0.0, 10.0, 11)[None]
    weights = torch.zeros(1, 10)
    weights[0, 6] = 1.0
    z = sample_pdf(edges, weights, 64)
    inside = ((z >= 6.0) & (z <= 7.0)).float().mean()
    assert inside > 0.95


def test_deterministic_pdf_samples_repeat_exactly():
    edges = torch.linspace(0.0, 1.0, 9).expand(3, 9)
    weights = torch.rand(3, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_pdf(edges, weights, 16), sample_pdf(edges, weights, 16))
