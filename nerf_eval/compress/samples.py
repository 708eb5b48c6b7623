"""Fewer samples per ray: caps on the coarse and fine sample counts, registered like a compressor.

`samples:FINE[:coarse=N]` leaves the networks as they are and puts a `SampleCaps` into
`pair.meta["samples"]`, which `render_rays` applies (`nerf_eval.render.capped_settings`): the pair renders
with at most FINE importance samples (and N coarse ones) per ray, whatever the render settings ask for
above that. The NeRF paper's 64+128 samples are a training-time choice; a trained model often renders as
well with fewer fine samples, because importance sampling places them where the coarse weights are and
halving them still resolves the surface. Whether it does is a measurement, not an assumption: the
compressor carries the same quality gates as `occupancy`, and autocompress tries it on val views.

It composes with the others, and it should come *before* `occupancy` (`samples:64+occupancy`): the
grid is baked for the samples it will serve (their typical step sets its density threshold). Skipping
empty space and stopping early cannot remove the fine samples themselves: on a surface, importance
sampling puts most of them where transmittance falls (`reports/sample-budget`), which is what this
accelerator trades.
"""

from __future__ import annotations

from nerf_eval.compress.base import FunctionCompressor, register
from nerf_eval.compress.params import CompressorSpec, Param
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair
from nerf_eval.render import SAMPLES_KEY, Rays, SampleCaps

DEFAULT_FINE = 64
# The budgets autocompress tries (every combination, on val views): composed with occupancy and coarse-grid,
# the scenes here chose 48 fine + 32 coarse (object, forward) and 32 + 32 (flower) on their val views
# (reports/sample-budget, reports/coarse-grid/val-budget.log).
SEARCH_FINE = (DEFAULT_FINE, 48, 32)
SEARCH_COARSE = (0, 32)
SAMPLES_GATES = {"psnr_drop": 0.1, "worst_psnr_drop": 0.2, "ssim_drop": 0.002}


def capped_pair(pair: ModelPair, caps: SampleCaps) -> ModelPair:
    """A copy of `pair` (networks copied, so nothing downstream shares them) rendering under `caps`; caps
    already present are tightened, never loosened."""
    return pair.copy_with(**{SAMPLES_KEY: caps.tightened(pair.meta.get(SAMPLES_KEY))})


PARAMS = (
    Param("fine", int, DEFAULT_FINE, low=0, high=4096, positional=True, help="fine samples per ray",
          search=SEARCH_FINE),
    Param("coarse", int, 0, low=0, high=4096,
          help="coarse samples per ray (0: as the render settings say; otherwise at least 3)", search=SEARCH_COARSE),
)


def samples_compressor(spec: CompressorSpec) -> FunctionCompressor:
    """The compressor for `samples[:FINE][:coarse=N]`."""
    fine, coarse = spec.values["fine"], spec.values["coarse"]
    try:
        caps = SampleCaps(coarse or None, fine)
    except ValueError as e:
        raise CompressorError(f"{spec}: {e}") from None

    def compress(pair: ModelPair, calibration: Rays) -> ModelPair:
        return capped_pair(pair, caps)

    coarse_text = f"{coarse} coarse + " if coarse else ""
    return FunctionCompressor(str(spec), compress, dict(SAMPLES_GATES),
                              f"render with at most {coarse_text}{fine} fine samples per ray")


register("samples", samples_compressor, params=PARAMS, search="accelerator",
         description="fewer samples per ray (networks unchanged; composes, put it before occupancy: "
                     "samples:64+occupancy); options :FINE, :coarse=N")

__all__ = ["DEFAULT_FINE", "SAMPLES_GATES", "capped_pair", "samples_compressor"]
