"""The report's Markdown table shows the paired latency speed-up with its spread beside the render times."""

import pytest

from nerf_eval.measure.quality import depth_change
from nerf_eval.report import image_grid, markdown_table


def row(name, psnr, t, **extra):
    return {"name": name, "psnr": psnr, "ssim": 0.9, "worst_psnr": psnr, "render_time_s": t, "size_bytes": 4_000_000,
            **extra}


def test_paired_speedup_and_its_interquartile_range_are_shown():
    rows = [row("fp32", 25.0, 10.0, speedup=1.01, speedup_spread=0.04),
            row("int8-ptq-both", 24.9, 4.0, speedup=2.46, speedup_spread=0.12),
            row("old-row", 24.0, 5.0)]
    lines = markdown_table(rows).splitlines()
    assert "paired speed-up (IQR)" in lines[0]
    assert "| 1.01× (0.04) |" in lines[2] and "| 2.46× (0.12) |" in lines[3]
    assert "| 2.00× | - |" in lines[4]  # measured before paired timing: its speed-up column only
    assert all(ln.count("|") == lines[0].count("|") for ln in lines)


def test_sharpness_depth_change_and_one_network_size_are_columns():
    rows = [row("fp32", 25.0, 10.0, sharpness=0.98, depth_change=0.0, size_fine_bytes=2_400_000),
            row("int8-ptq-both", 24.9, 4.0, sharpness=0.91, depth_change=0.0123, size_fine_bytes=700_000),
            row("old-row", 24.0, 5.0)]
    lines = markdown_table(rows).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    for name, values in (("sharpness", ["0.980", "0.910", "-"]), ("Δdepth vs fp32", ["0.0000", "0.0123", "-"]),
                         ("one net MB", ["2.40", "0.70", "-"])):
        assert [c[head.index(name)] for c in cells] == values


def test_depth_change_is_measured_against_the_reference_views():
    import math

    import torch

    from nerf_eval.evaluate import ViewRender

    def view(i, depth):
        d = torch.full((2, 3), depth)
        return ViewRender(i, torch.zeros(2, 3, 3), d, torch.ones(2, 3))

    mean, per_view = depth_change([view(0, 0.5), view(1, 0.2), view(2, 0.0)], [view(0, 0.4), view(1, 0.2)])
    assert per_view[:2] == [pytest.approx(0.1), 0.0] and math.isnan(per_view[2])
    assert mean == pytest.approx(0.05)  # over the views the reference has


def test_grid_shows_depth_change_against_fp32(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    gt = {3: rng.random((8, 8, 3))}
    renders = {n: {3: {"rgb": rng.random((8, 8, 3)), "depth": rng.random((8, 8))}} for n in ("fp32", "bf16")}
    image_grid(gt, renders, [3], tmp_path / "grid.png")
    import imageio.v3 as iio

    img = iio.imread(tmp_path / "grid.png")
    assert img.shape[1] > img.shape[0]  # 4 panels per view, 3 rows
