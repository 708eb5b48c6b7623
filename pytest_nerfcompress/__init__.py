"""pytest plugin: benchmarks and quality gates for NeRF compressors.

    import pytest_nerfcompress

    @pytest_nerfcompress.compressor("my-comp", gates={"psnr_drop": 0.3})
    def my_comp(pair, calibration):
        ...

See plugin.py for the hooks and fixtures.py for the fixtures.
"""

from pytest_nerfcompress.declare import compressor
from pytest_nerfcompress.target import Target

__all__ = ["Target", "compressor"]
