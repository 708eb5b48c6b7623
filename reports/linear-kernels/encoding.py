"""The positional encoding written point by point (the layout before 2026-12-05) against feature by feature
then transposed (`nerf_eval.encoding.positional_encoding` now): python encoding.py. For 4096 and 16384 points
(the fp32 and int8 networks' chunks) and one and two threads, times both into the first 63 columns of a
(N, 90) network input, paired (`nerf_eval.measure.latency.time_pair`: back to back in each round, the order
alternating; the median of the per-round ratios with its IQR), and checks that they write the same bits."""
import torch

from nerf_eval.encoding import encoded_dim, positional_encoding
from nerf_eval.hardware import machine_summary
from nerf_eval.measure.latency import PairedProtocol, time_pair


def point_by_point(x: torch.Tensor, n_freqs: int, out: torch.Tensor) -> torch.Tensor:
    """Every sine and cosine block written straight into its 3 columns of each point's row."""
    dim = x.shape[-1]
    out[:, :dim] = x
    freqs = 2.0 ** torch.arange(n_freqs, dtype=torch.float32)
    angles = x.unsqueeze(-2) * freqs.unsqueeze(-1)  # (N, L, D)
    sin_cos = out[:, dim:].unflatten(1, (n_freqs, 2, dim))
    sin_cos[:, :, 0].copy_(torch.sin(angles))
    sin_cos[:, :, 1].copy_(torch.cos(angles))
    return out


print(machine_summary())
protocol = PairedProtocol(rounds=41, warmup=3)
torch.manual_seed(0)
with torch.inference_mode():
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for n in (4096, 16384):
            pts = torch.rand(n, 3) * 4 - 2
            old, new = torch.empty(n, 90), torch.empty(n, 90)
            width = encoded_dim(3, 10)
            timing = time_pair(lambda: point_by_point(pts, 10, old[:, :width]),
                               lambda: positional_encoding(pts, 10, out=new[:, :width]), protocol)
            same = torch.equal(old[:, :width], new[:, :width])
            print(f"{threads} thread(s), {n:5d} points: point by point {timing.reference_latency_s * 1e3:.3f} ms, "
                  f"feature by feature {timing.latency_s * 1e3:.3f} ms, {timing.summary()}, same bits: {same}")
