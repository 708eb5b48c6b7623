"""nerf_eval: a vanilla NeRF core for measuring compression (quality, size, speed)."""

from nerf_eval.model import ModelPair, NeRF, NeRFConfig

__all__ = ["ModelPair", "NeRF", "NeRFConfig"]
__version__ = "0.1.0"
