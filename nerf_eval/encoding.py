"""Positional encoding of NeRF (Mildenhall et al. 2020), in nerf-pytorch's order.

Output for input x with L frequencies: [x, sin(2^0 x), cos(2^0 x), ..., sin(2^(L-1) x), cos(2^(L-1) x)].
It always runs in fp32: sin(2^9 x) loses its meaning in low precision.
"""

from __future__ import annotations

import torch


def encoded_dim(in_dim: int, n_freqs: int, include_input: bool = True) -> int:
    """Width of the encoding of an `in_dim`-vector with `n_freqs` frequencies."""
    return in_dim * (int(include_input) + 2 * n_freqs)


def positional_encoding(x: torch.Tensor, n_freqs: int, include_input: bool = True) -> torch.Tensor:
    """Encode the last dimension of `x` with `n_freqs` log-spaced frequencies (2^0 .. 2^(L-1))."""
    x = x.float()
    parts = [x] if include_input else []
    if n_freqs > 0:
        freqs = 2.0 ** torch.arange(n_freqs, dtype=torch.float32, device=x.device)
        xf = x.unsqueeze(-2) * freqs.unsqueeze(-1)  # (..., L, D)
        sc = torch.stack([torch.sin(xf), torch.cos(xf)], dim=-2)  # (..., L, 2, D)
        parts.append(sc.flatten(-3))
    return torch.cat(parts, dim=-1) if parts else x[..., :0]
