"""Laws of symmetric quantization (nerf_eval.compress.qmath) and of quantized networks, checked by hypothesis."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from nerf_eval.compress import qmath
from nerf_eval.compress.quantize import static_int8_network
from nerf_eval.encoding import positional_encoding
from nerf_eval.model import NeRF, NeRFConfig

MAGNITUDES = (1e-38, 1e-12, 1e-6, 1e-2, 1.0, 1e3, 1e12, 1e30)
# float32 rounding of w/scale and q*scale may add up to 2*127 ulps of the scale to the ideal bound scale/2
ROUNDING_SLACK = 2 * 127 * 2.0 ** -23


@st.composite
def weight_tensors(draw, max_rows: int = 8, max_cols: int = 24) -> torch.Tensor:
    """Weight matrices (out, in) with signs, exact zeros, all-zero rows, tiny to huge per-row magnitudes."""
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.integers(1, max_cols))
    base = draw(hnp.arrays(np.float32, (rows, cols), elements=st.floats(-1.0, 1.0, width=32)))
    row_scale = draw(hnp.arrays(np.float64, (rows, 1), elements=st.sampled_from(MAGNITUDES)))
    zero_rows = draw(hnp.arrays(np.bool_, (rows,)))
    w = (base.astype(np.float64) * row_scale).astype(np.float32)
    w[zero_rows] = 0.0
    return torch.from_numpy(w)


@st.composite
def nerf_configs(draw) -> NeRFConfig:
    """Small NeRF MLPs: depth, widths, skip positions, encodings and the view branch vary."""
    depth = draw(st.integers(1, 4))
    skips = tuple(draw(st.sets(st.integers(0, depth - 1), max_size=2)))
    return NeRFConfig(depth=depth, width=draw(st.sampled_from([16, 32])), skips=skips,
                      multires=draw(st.integers(1, 4)), multires_views=draw(st.integers(1, 2)),
                      use_viewdirs=draw(st.booleans()), view_width=draw(st.sampled_from([8, 16])))


def encoded_inputs(config: NeRFConfig, n: int, seed: int) -> torch.Tensor:
    """What the renderer feeds an MLP: encoded points in the scene box and encoded unit view directions."""
    g = torch.Generator().manual_seed(seed)
    x = positional_encoding(torch.rand(n, 3, generator=g) * 4 - 2, config.multires)
    if not config.use_viewdirs:
        return x
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    return torch.cat([x, positional_encoding(d, config.multires_views)], -1)


@given(weight_tensors())
def test_zero_point_is_zero(w):
    q = qmath.quantize(w, qmath.symmetric_scales(w))
    assert torch.all(q[w == 0] == 0)
    assert torch.all(qmath.dequantize(torch.zeros_like(q), qmath.symmetric_scales(w)) == 0)


@given(weight_tensors())
def test_quantization_is_odd(w):
    scales = qmath.symmetric_scales(w)
    assert torch.equal(qmath.symmetric_scales(-w), scales)
    assert torch.equal(qmath.quantize(-w, scales), -qmath.quantize(w, scales))


@given(weight_tensors(), st.sampled_from(qmath.SUPPORTED_BITS))
def test_integers_stay_in_symmetric_range(w, bits):
    q = qmath.quantize(w, qmath.symmetric_scales(w, bits), bits)
    m = qmath.qmax(bits)
    assert q.dtype == torch.int8
    assert int(q.min()) >= -m and int(q.max()) <= m
    assert m == (127 if bits == 8 else 7)


@given(weight_tensors())
def test_scale_is_channel_max_over_127_floored(w):
    expected = torch.clamp(w.abs().amax(dim=1) / 127.0, min=qmath.SCALE_FLOOR)
    assert torch.equal(qmath.symmetric_scales(w), expected)
    big = w.abs().amax(dim=1) / 127.0 >= qmath.SCALE_FLOOR
    assert torch.all(qmath.quantize(w, expected).abs().amax(dim=1)[big] == 127)


@given(weight_tensors(), st.sampled_from(qmath.SUPPORTED_BITS))
def test_round_trip_error_is_at_most_half_a_step(w, bits):
    scales = qmath.symmetric_scales(w, bits)
    err = (qmath.dequantize(qmath.quantize(w, scales, bits), scales).double() - w.double()).abs()
    bound = scales.double()[:, None] * (0.5 + ROUNDING_SLACK)
    assert torch.all(err <= bound)


@given(weight_tensors(), st.sampled_from(qmath.SUPPORTED_BITS))
def test_quantizing_a_dequantized_tensor_is_idempotent(w, bits):
    q, scales = qmath.quantize_per_channel(w, bits)
    w1 = qmath.dequantize(q, scales)
    q2, scales2 = qmath.quantize_per_channel(w1, bits)
    assert torch.equal(q2, q)
    assert torch.allclose(qmath.dequantize(q2, scales2), w1, rtol=1e-6, atol=0.0)


@given(weight_tensors(), st.sampled_from(qmath.SUPPORTED_BITS))
def test_all_zero_channel_gives_no_nan_or_inf(w, bits):
    w = w.clone()
    w[0] = 0.0
    q, scales = qmath.quantize_per_channel(w, bits)
    back = qmath.dequantize(q, scales)
    assert torch.isfinite(scales).all() and torch.all(scales > 0)
    assert scales[0] == qmath.SCALE_FLOOR
    assert torch.all(q[0] == 0) and torch.all(back[0] == 0)
    assert torch.isfinite(back).all()


@given(weight_tensors(), st.sampled_from([1, 3, 8, 32]))
def test_grouped_quantization_keeps_the_laws_per_group(w, group):
    q, scales = qmath.quantize_grouped(w, group, 4)
    assert q.shape == (w.shape[0], math.ceil(w.shape[1] / group) * group)
    assert scales.shape == (w.shape[0], q.shape[1] // group)
    assert int(q.abs().max()) <= 7
    back = qmath.dequantize_grouped(q, scales, w.shape[1])
    step = scales.repeat_interleave(group, dim=1)[:, : w.shape[1]].double()
    assert torch.all((back.double() - w.double()).abs() <= step * (0.5 + ROUNDING_SLACK))
    assert torch.equal(qmath.quantize_grouped(-w, group, 4)[0], -q)


@given(hnp.arrays(np.int8, st.integers(0, 65), elements=st.integers(-8, 7)))
def test_int4_packing_round_trips_two_values_per_byte(values):
    q = torch.from_numpy(values)
    packed = qmath.pack_int4(q)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(q.numel() / 2)
    assert torch.equal(qmath.unpack_int4(packed, q.numel()), q)


def test_int4_packing_refuses_out_of_range_values():
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        qmath.pack_int4(torch.tensor([8], dtype=torch.int8))


# Each example calibrates and converts a network (about a second): no shrinking phase for these two.
MODEL_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                      phases=[Phase.explicit, Phase.reuse, Phase.generate])


@settings(max_examples=8, **MODEL_SETTINGS)
@given(nerf_configs(), st.integers(0, 2**16))
def test_int8_network_keeps_shapes_and_stays_close_to_float(config, seed):
    torch.manual_seed(seed)
    net = NeRF(config).eval()
    quantized = static_int8_network(net, encoded_inputs(config, 2048, seed))
    x = encoded_inputs(config, 512, seed + 1)
    with torch.inference_mode():
        ref, out = net(x), quantized(x)
    assert out.shape == ref.shape == (512, 4)
    assert out.dtype == torch.float32
    rel_rms = float(torch.sqrt(torch.mean((out - ref) ** 2)) / torch.sqrt(torch.mean(ref ** 2)))
    assert rel_rms < 0.05, f"int8 output differs from float by {rel_rms:.3%} (RMS)"


@settings(max_examples=4, **MODEL_SETTINGS)
@given(nerf_configs(), st.integers(0, 2**16))
def test_int8_network_weights_follow_the_qmath_rule(config, seed):
    torch.manual_seed(seed)
    net = NeRF(config).eval()
    quantized = static_int8_network(net, encoded_inputs(config, 256, seed))
    w = net.pts_linears[0].weight.detach()
    qw = quantized.get_submodule("pts_linears.0").weight()
    assert torch.all(qw.q_per_channel_zero_points() == 0)  # fbgemm stores symmetric weights as affine, zero point 0
    assert torch.allclose(qw.q_per_channel_scales().float(), qmath.symmetric_scales(w), rtol=1e-6, atol=0)
    assert torch.equal(qw.int_repr(), qmath.quantize(w, qmath.symmetric_scales(w)))
