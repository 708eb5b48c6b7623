"""The half-precision speed check: measured against fp32, and what the callers do with it."""

from __future__ import annotations

import torch

import nerf_eval.hardware as hw
from nerf_eval.compress import get_compressor
from nerf_eval.model import ModelPair, NeRFConfig

TINY = NeRFConfig(depth=2, width=16, skips=(), multires=2, multires_views=1, view_width=8)


def test_fp32_is_the_reference_and_never_slow():
    assert hw.matmul_speed_ratio(torch.float32) == 1.0
    assert not hw.is_slow_dtype(torch.float32)


def test_half_ratio_is_a_positive_measurement():
    ratio = hw.matmul_speed_ratio(torch.bfloat16)
    assert ratio > 0 and hw.is_slow_dtype(torch.bfloat16) == (ratio < hw.SLOW_RATIO)


def test_slow_dtypes_of_a_pair_follow_the_measured_rate(monkeypatch):
    torch.manual_seed(0)
    pair = ModelPair.create(TINY)
    cast = get_compressor("bf16").compress(pair, None)
    monkeypatch.setattr(hw, "matmul_speed_ratio", lambda dtype: 0.02)
    assert hw.slow_dtypes(cast) == [torch.bfloat16] and hw.slow_dtypes(pair) == []
    assert "bfloat16 at 0.02x the fp32 GEMM rate" in hw.slow_dtype_note([torch.bfloat16])
    monkeypatch.setattr(hw, "matmul_speed_ratio", lambda dtype: 2.5)
    assert hw.slow_dtypes(cast) == []
