"""Samples along rays: stratified samples between near and far, and inverse-CDF (hierarchical) samples."""

from __future__ import annotations

import torch


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype,
            device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) samples drawn from `generator` on its own device, then moved to `device`.

    Training keeps one CPU generator whatever device the networks are on, so a run's random stream
    (and with it resuming from a checkpoint) does not depend on where the steps ran.
    """
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, dtype=dtype, device=where).to(device)


def gaussian(shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype,
             device: torch.device) -> torch.Tensor:
    """Standard normal samples drawn like `uniform`: on the generator's device, then moved."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, dtype=dtype, device=where).to(device)


def stratified_samples(near: torch.Tensor, far: torch.Tensor, n_samples: int, perturb: bool = False,
                       lindisp: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample depths (R, n_samples), sorted, between per-ray `near` and `far` (R,) tensors.

    Without `perturb` the samples are the bin edges' linspace (deterministic, as in evaluation);
    with it, one uniform sample per bin (training).
    """
    t = torch.linspace(0.0, 1.0, n_samples, dtype=near.dtype, device=near.device)
    near, far = near[:, None], far[:, None]
    if lindisp:
        z = 1.0 / (1.0 / near * (1.0 - t) + 1.0 / far * t)
    else:
        z = near * (1.0 - t) + far * t
    if perturb:
        mids = 0.5 * (z[:, 1:] + z[:, :-1])
        upper = torch.cat([mids, z[:, -1:]], -1)
        lower = torch.cat([z[:, :1], mids], -1)
        u = uniform(z.shape, generator, z.dtype, z.device)
        z = lower + (upper - lower) * u
    return z


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n_samples: int, deterministic: bool = True,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw `n_samples` depths per ray from the piecewise-constant pdf `weights` over `bins`.

    bins: (R, B+1) sorted edges; weights: (R, B). Returns (R, n_samples), sorted and inside [bins[0], bins[-1]].
    """
    weights = weights + 1e-5
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cumsum(pdf, -1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1)
    cdf = cdf / cdf[:, -1:]  # exact 1 at the end, so u in [0, 1] stays inside the last bin
    shape = (cdf.shape[0], n_samples)
    if deterministic:
        u = torch.linspace(0.0, 1.0, n_samples, dtype=cdf.dtype, device=cdf.device).expand(shape)
    else:
        u = uniform(shape, generator, cdf.dtype, cdf.device)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True)
    below = (idx - 1).clamp(0, cdf.shape[-1] - 1)
    above = idx.clamp(0, cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = torch.gather(cdf, -1, below), torch.gather(cdf, -1, above)
    bin_lo, bin_hi = torch.gather(bins, -1, below), torch.gather(bins, -1, above)
    denom = cdf_hi - cdf_lo
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    t = ((u - cdf_lo) / denom).clamp(0.0, 1.0)
    samples = bin_lo + t * (bin_hi - bin_lo)
    return torch.sort(samples, -1).values
