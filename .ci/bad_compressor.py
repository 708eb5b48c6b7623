"""A deliberately destructive compressor for CI: it zeroes the density head, so every gate must fail.

Loaded with `-p bad_compressor` (PYTHONPATH=.ci); registers through the plugin's hook.
"""

import copy

import torch


def _zero_density(pair, calibration):
    out = copy.deepcopy(pair)
    with torch.no_grad():
        for net in out.networks().values():
            net.alpha_linear.weight.zero_()
            net.alpha_linear.bias.fill_(-1.0)
    return out


def pytest_nerfcompress_register(registry):
    from nerf_eval.compress import FunctionCompressor

    registry.add(FunctionCompressor("zero-density", _zero_density, {"psnr_drop": 0.3}))
