"""Repairing a pruned layer's consumers, so that removing units costs less than dropping their output.

Removing a unit drops its contribution to its consumers. Optional repair (`repair=`): `mean` replaces
each removed unit by its mean calibration activation, folded into the consumers' biases (`fill_bias`);
`lsq` refits the consumers' kept columns and bias by least squares on the calibration activations
(removed units regressed on the kept ones, `refit_consumer`), as layer-wise reconstruction in
channel-pruning work does.
"""

from __future__ import annotations

import torch

REPAIRS = ("none", "mean", "lsq")


def fill_bias(weight: torch.Tensor, bias: torch.Tensor, removed: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
    """The consumer's bias with each removed unit replaced by a constant activation.

    `weight` (out, n) are the consumer's columns for the producer's n units, `removed` a boolean mask of
    the units that go, `constant` one value per unit (e.g. its mean activation on calibration data)."""
    return bias + weight[:, removed] @ constant[removed]


def refit_consumer(weight: torch.Tensor, bias: torch.Tensor, kept: torch.Tensor, moment: torch.Tensor,
                   rcond: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares repair of a consumer after its producer loses units.

    `weight` (out, n) are the consumer's columns for the producer's n units, `kept` the surviving units,
    `moment` E[[a; 1][a; 1]^T] of the producer's activations. Returns new columns for the kept units and a
    new bias such that W_k a_k + b' best matches W a + b on the calibration data: each removed unit is
    replaced by its linear regression on the kept units and a constant (mean compensation is the special
    case of regressing on the constant alone). Units that are zero, constant or copies of kept units on
    the data are repaired exactly. The normal equations are solved by SVD (singular values below `rcond`
    times the largest are dropped), so dead or collinear kept units do no harm."""
    n = weight.shape[1]
    removed = torch.ones(n + 1, dtype=torch.bool)
    removed[kept] = False
    removed[n] = False
    rows = torch.cat([kept, torch.tensor([n])])
    m = moment.double()
    coef = torch.linalg.lstsq(m[rows][:, rows], m[rows][:, removed], rcond=rcond, driver="gelsd").solution
    delta = weight[:, removed[:n]].double() @ coef.T
    return (weight[:, kept].double() + delta[:, :-1]).float(), (bias.double() + delta[:, -1]).float()
