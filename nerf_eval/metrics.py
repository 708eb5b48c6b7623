"""Image-quality metrics on rendered views: PSNR, SSIM, FLIP, depth error and a sharpness ratio.

All take float images (H, W, 3) in [0, 1] (numpy or torch). PSNR alone hides blur (the reference
report's finding), hence SSIM, FLIP (a perceptual error made for rendered images, no learned weights)
and the sharpness ratio (gradient energy of the render over that of the ground truth).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def psnr(img, gt) -> float:
    """Peak signal-to-noise ratio in dB (data range 1); inf for identical images."""
    mse = float(np.mean((_np(img) - _np(gt)) ** 2, dtype=np.float64))
    return math.inf if mse == 0.0 else -10.0 * math.log10(mse)


def ssim(img, gt) -> float:
    """Structural similarity (scikit-image, Gaussian window as in Wang et al., data_range 1)."""
    from skimage.metrics import structural_similarity

    a, b = _np(img).clip(0, 1), _np(gt).clip(0, 1)
    side = min(a.shape[0], a.shape[1])
    win = None if side >= 11 else side - (1 - side % 2)  # images under 11 px: the largest odd window that fits
    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False, win_size=win))


def flip(img, gt) -> float:
    """Mean LDR-FLIP error (0 = identical; NVIDIA's flip-evaluator, default 67 pixels per degree)."""
    import flip_evaluator

    _, mean, _ = flip_evaluator.evaluate(_np(gt).clip(0, 1), _np(img).clip(0, 1), "LDR", applyMagma=False)
    return float(mean)


def depth_error(depth, gt_depth, mask=None) -> float:
    """Mean absolute depth error over pixels with finite ground-truth depth (and `mask`, if given)."""
    d, g = _np(depth), _np(gt_depth)
    valid = np.isfinite(g)
    if mask is not None:
        valid &= _np(mask).astype(bool)
    if not valid.any():
        return math.nan
    return float(np.mean(np.abs(d[valid] - g[valid]), dtype=np.float64))


def gradient_energy(img) -> float:
    a = _np(img).mean(-1)
    gx, gy = np.diff(a, axis=1), np.diff(a, axis=0)
    return float(sum((g ** 2).mean() for g in (gx, gy) if g.size))  # a 1-pixel side has no differences


def sharpness_ratio(img, gt) -> float:
    """Gradient energy of the render over that of the ground truth (< 1: blurrier, > 1: noisier)."""
    ref = gradient_energy(gt)
    return math.nan if ref == 0 else gradient_energy(img) / ref


def view_metrics(rgb, gt, depth=None, gt_depth=None, with_flip: bool = True) -> dict[str, float]:
    """All per-view metrics as a dict (depth_error only when both depths are given)."""
    out = {"psnr": psnr(rgb, gt), "ssim": ssim(rgb, gt), "sharpness": sharpness_ratio(rgb, gt)}
    if with_flip:
        out["flip"] = flip(rgb, gt)
    if depth is not None and gt_depth is not None:
        out["depth_error"] = depth_error(depth, gt_depth)
    return out


def _mean_of_defined(values: list[float]) -> float:
    """Mean over the views where the metric is defined (not NaN); NaN when it is defined on none.

    Like np.nanmean, without its "Mean of empty slice" RuntimeWarning (a flat ground truth has no
    sharpness ratio, and a run should not print warnings for that)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else math.nan


def summarize(per_view: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over views, plus the worst view's PSNR and its position."""
    if not per_view:
        return {}
    keys = per_view[0].keys()
    out = {k: _mean_of_defined([v[k] for v in per_view]) for k in keys}
    psnrs = [v["psnr"] for v in per_view]
    worst = int(np.argmin(psnrs))
    out["worst_psnr"] = float(psnrs[worst])
    out["worst_view"] = worst
    return out
