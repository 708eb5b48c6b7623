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

    The encoding is computed feature by feature (a (width, N) buffer whose rows are long contiguous
    runs) and transposed once into the (N, width) output (optionally `out`, an (N, width) fp32 view,
    e.g. the first columns of a network's input buffer). Written point by point, every sine and cosine
    block is a run of `dim` (3) values, and torch's elementwise kernels pay their per-run overhead on
    each: 1.6-1.7x the time (4096 and 16,384 points, one and two threads, 2-core AMX Xeon,
    reports/linear-kernels/encoding-amx.log). Angles are exact (powers of two), so the values are those of
    torch.sin/torch.cos of 2^k x. `x` must not need a gradient (NeRF's encoded points and directions are
    constants; torch refuses the out= writes otherwise).
    """
    x = x.float()
    dim = x.shape[-1]
    flat = x.reshape(-1, dim)
    n = flat.shape[0]
    width = encoded_dim(dim, n_freqs, include_input)
    if out is None:
        out = torch.empty(n, width, dtype=torch.float32, device=x.device)
    elif out.shape != (n, width):
        raise ValueError(f"out has shape {tuple(out.shape)}, the encoding needs {(n, width)}")
    by_feature = torch.empty(width, n, dtype=torch.float32, device=x.device)
    coords = by_feature[:dim] if include_input else torch.empty(dim, n, dtype=torch.float32, device=x.device)
    coords.copy_(flat.t())
    if n_freqs > 0:
        freqs = 2.0 ** torch.arange(n_freqs, dtype=torch.float32, device=x.device)
        angles = freqs[:, None, None] * coords  # (L, D, N)
        sin_cos = by_feature[dim if include_input else 0:].view(n_freqs, 2, dim, n)
        torch.sin(angles, out=sin_cos[:, 0])
        torch.cos(angles, out=sin_cos[:, 1])
    out.copy_(by_feature.t())
    return out.reshape(*x.shape[:-1], width)
