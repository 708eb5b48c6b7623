"""Positional encoding: nerf-pytorch's layout [x, sin(2^0 x), cos(2^0 x), ..., sin(2^(L-1) x), cos(2^(L-1) x)]."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerf_eval.encoding import encoded_dim, positional_encoding


def frequency_counts():
    return st.integers(min_value=0, max_value=10)


@given(n_freqs=frequency_counts(), include_input=st.booleans())
@settings(max_examples=25, deadline=None)
def test_width_matches_encoded_dim(n_freqs, include_input):
    x = torch.rand(5, 3)
    out = positional_encoding(x, n_freqs, include_input)
    assert out.shape == (5, encoded_dim(3, n_freqs, include_input))


def test_vanilla_widths():
    assert encoded_dim(3, 10) == 63
    assert encoded_dim(3, 4) == 27


def test_input_comes_first_then_sin_cos_per_frequency():
    x = torch.tensor([[0.3, -1.2, 2.5], [0.0, 0.7, -0.1]])
    out = positional_encoding(x, 3)
    assert torch.equal(out[:, :3], x)
    for k in range(3):
        base = 3 + 6 * k
        torch.testing.assert_close(out[:, base:base + 3], torch.sin(2.0 ** k * x))
        torch.testing.assert_close(out[:, base + 3:base + 6], torch.cos(2.0 ** k * x))


def test_without_input_starts_with_the_first_sine():
    x = torch.tensor([[0.5, 1.0, -2.0]])
    out = positional_encoding(x, 2, include_input=False)
    torch.testing.assert_close(out[:, :3], torch.sin(x))


def test_leading_dimensions_are_kept_and_output_is_fp32():
    x = torch.rand(2, 4, 3, dtype=torch.float64)
    out = positional_encoding(x, 4)
    assert out.shape == (2, 4, 27)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.reshape(8, 27), positional_encoding(x.reshape(8, 3), 4))


def test_zero_frequencies_is_identity():
    x = torch.rand(3, 3)
    assert torch.equal(positional_encoding(x, 0), x)
