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


def test_encoding_into_the_first_columns_of_a_wider_buffer_is_the_same_encoding():
    x = torch.randn(7, 3) * 3
    buf = torch.full((7, 63 + 27), float("nan"))
    out = positional_encoding(x, 10, out=buf[:, :63])
    assert out.data_ptr() == buf.data_ptr() and torch.equal(buf[:, :63], positional_encoding(x, 10))
    assert torch.isnan(buf[:, 63:]).all()  # nothing written past its columns


def test_exact_sines_and_cosines_of_power_of_two_angles():
    x = torch.randn(11, 3) * 5
    out = positional_encoding(x, 10)
    for k in range(10):
        base = 3 + 6 * k
        assert torch.equal(out[:, base:base + 3], torch.sin(x * 2.0 ** k))
        assert torch.equal(out[:, base + 3:base + 6], torch.cos(x * 2.0 ** k))


def test_an_out_of_the_wrong_shape_is_refused():
    import pytest

    with pytest.raises(ValueError, match="out has shape"):
        positional_encoding(torch.zeros(4, 3), 2, out=torch.empty(4, 14))
