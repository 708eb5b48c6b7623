"""The report's Markdown table shows the paired latency speed-up with its spread beside the render times."""

from nerf_eval.report import markdown_table


def row(name, psnr, t, **extra):
    return {"name": name, "psnr": psnr, "ssim": 0.9, "worst_psnr": psnr, "render_time_s": t, "size_bytes": 4_000_000,
            **extra}


def test_paired_speedup_and_its_interquartile_range_are_shown():
    rows = [row("fp32", 25.0, 10.0, latency_speedup=1.01, latency_speedup_spread=0.04),
            row("int8-ptq-both", 24.9, 4.0, latency_speedup=2.46, latency_speedup_spread=0.12),
            row("old-row", 24.0, 5.0)]
    lines = markdown_table(rows).splitlines()
    assert "paired speed-up (IQR)" in lines[0]
    assert "| 1.01× (0.04) |" in lines[2] and "| 2.46× (0.12) |" in lines[3]
    assert "| 2.00× | - |" in lines[4]  # measured before paired timing: its speed-up column only
    assert all(ln.count("|") == lines[0].count("|") for ln in lines)
