"""Symmetric integer quantization of weight tensors: scales, quantize, dequantize, int4 packing.

Pure functions over tensors, shared by the weight-only compressors and checked by the property tests.
The rule (the same one torch's per-channel observer applies in the static int8 path):

- one scale per output channel (row 0 of the weight), or per group of `group_size` inputs of a row;
- scale = max|w| / qmax with qmax = 2**(bits-1) - 1 (127 for int8, 7 for int4), floored at
  SCALE_FLOOR = float32 eps (1.19e-7). The floor is the rule for all-zero (and near-zero) channels:
  they get scale SCALE_FLOOR and quantize to zeros, never to NaN or inf;
- zero point 0, q = clamp(round(w / scale), -qmax, qmax): the range is symmetric, so q(-w) = -q(w).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCALE_FLOOR = float(torch.finfo(torch.float32).eps)
SUPPORTED_BITS = (4, 8)


def qmax(bits: int) -> int:
    """Largest integer of the symmetric signed range of `bits` bits (127 for 8, 7 for 4)."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"unsupported bit width {bits}; choose one of {SUPPORTED_BITS}")
    return 2 ** (bits - 1) - 1


def _rows(w: torch.Tensor) -> torch.Tensor:
    """View `w` as (channels, everything else) in fp32 (a 1-d tensor is one value per channel)."""
    w = w.float()
    return w.reshape(w.shape[0], -1) if w.dim() > 1 else w.reshape(-1, 1)


def symmetric_scales(w: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Per-output-channel scales (shape (w.shape[0],)) of the symmetric rule in the module docstring."""
    amax = _rows(w).abs().amax(dim=1)
    return torch.clamp(amax / qmax(bits), min=SCALE_FLOOR)


def _expand(scales: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return scales.reshape(scales.shape[0], *([1] * (w.dim() - 1)))


def quantize(w: torch.Tensor, scales: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Integers (int8 storage) of `w` for per-channel `scales`, in [-qmax, qmax]; zero point 0."""
    m = qmax(bits)
    q = torch.round(w.float() / _expand(scales, w))
    return torch.clamp(q, -m, m).to(torch.int8)


def dequantize(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Real values (fp32) of per-channel integers `q`."""
    return q.float() * _expand(scales, q)


def quantize_per_channel(w: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(integers, scales) of `w` with one scale per output channel."""
    scales = symmetric_scales(w, bits)
    return quantize(w, scales, bits), scales


def quantize_grouped(w: torch.Tensor, group_size: int, bits: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize a 2-d weight (out, in) with one scale per `group_size` consecutive inputs of each row.

    The input dimension is zero-padded to a multiple of `group_size`; returns integers (out, in_padded)
    and scales (out, in_padded // group_size). Each group follows the per-channel rule.
    """
    if w.dim() != 2:
        raise ValueError(f"grouped quantization needs a 2-d weight, got shape {tuple(w.shape)}")
    if group_size < 1:
        raise ValueError(f"group size must be positive, got {group_size}")
    out_f, in_f = w.shape
    padded = F.pad(w.float(), (0, (-in_f) % group_size))
    groups = padded.reshape(-1, group_size)
    q, scales = quantize_per_channel(groups, bits)
    return q.reshape(out_f, -1), scales.reshape(out_f, -1)


def dequantize_grouped(q: torch.Tensor, scales: torch.Tensor, in_features: int) -> torch.Tensor:
    """Real (out, in_features) weight from grouped integers (out, in_padded) and scales (out, groups)."""
    out_f, n_groups = scales.shape
    w = dequantize(q.reshape(out_f * n_groups, -1), scales.reshape(-1))
    return w.reshape(out_f, -1)[:, :in_features]


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack int4 values (int8 storage in [-8, 7]) two per byte: a flat uint8 tensor of ceil(n/2) bytes.

    Element 2k goes to the low nibble of byte k and element 2k+1 to its high nibble (two's complement).
    """
    flat = q.reshape(-1).to(torch.int16)
    if flat.numel() and (flat.min() < -8 or flat.max() > 7):
        raise ValueError("int4 packing needs values in [-8, 7]")
    flat = F.pad(flat, (0, flat.numel() % 2)) & 0xF
    return (flat[0::2] | (flat[1::2] << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """The first `numel` int4 values (int8 storage) of bytes written by `pack_int4`."""
    b = packed.reshape(-1).to(torch.int16)
    nibbles = torch.stack([b & 0xF, (b >> 4) & 0xF], dim=-1).reshape(-1)[:numel]
    return torch.where(nibbles > 7, nibbles - 16, nibbles).to(torch.int8)
