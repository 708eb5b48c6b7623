"""A first try at the fp32-output int8 heads inside the int8 graph: python int8_heads_graph.py.

Swaps `alpha_linear` and `rgb_linear` of `int8-ptq-both`'s FX graphs (object checkpoint) for oneDNN's int8
Linear with an fp32 output (`torch.ops.onednn.qlinear_pointwise`, int8 weights per output channel), fed
the uint8 codes of the quantized activations through a zero-copy view instead of their dequantized
values, then times the fine network on 16384 points against the unmodified one, paired
(`nerf_eval.measure.latency`, 9 rounds, the order alternating), and prints a per-op profile of the modified
network, and the median times (`nerf_eval.throughput.median_time`) of the unmodified network with and without
a call of the head op after each of its calls. A measurement for whoever takes this up, not library code.
"""
import warnings

import torch
from torch import nn

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import machine_summary
from nerf_eval.measure import calibration_batch
from nerf_eval.measure.latency import PairedProtocol, time_pair
from nerf_eval.scenes import load_scene
from nerf_eval.throughput import median_time

warnings.simplefilter("ignore")  # torch warns that quantized tensors are deprecated at each creation
ops = torch.ops.onednn


def uint8_view(q: torch.Tensor) -> torch.Tensor:
    return torch.empty(0, dtype=torch.uint8).set_(q.untyped_storage(), q.storage_offset(), q.size(), q.stride())


class CodesLinear(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        scale = self.weight.detach().abs().amax(1).clamp_min(1e-12) / 127
        self.register_buffer("w_scale", scale, persistent=False)
        self.register_buffer("w_zero", torch.zeros(len(scale), dtype=torch.long), persistent=False)
        codes = torch.round(self.weight.detach() / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.packed = ops.qlinear_prepack(codes, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.qlinear_pointwise(uint8_view(x), x.q_scale(), x.q_zero_point(), self.packed, self.w_scale,
                                     self.w_zero, self.bias, 1.0, 0, torch.float32, "none", [], "")


def with_codes_heads(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and node.target in ("alpha_linear", "rgb_linear"):
            source = node.args[0]
            if source.op == "call_method" and source.target == "dequantize":
                node.args = (source.args[0],) + tuple(node.args[1:])
                if not source.users:
                    gm.graph.erase_node(source)
                gm.add_submodule(node.target, CodesLinear(gm.get_submodule(node.target)))
    gm.graph.lint()
    gm.recompile()
    return gm


scene = load_scene("object")
pair = load_checkpoint("checkpoints/object/checkpoint.pt").eval()
plain = get_compressor("int8-ptq-both").compress(pair, calibration_batch(scene, 4096))
swapped = with_codes_heads(plain.copy_with().fine)
nets = {"int8-ptq-both": plain.fine, "with int8 fp32-output heads": swapped}
x = torch.randn(16384, 90, generator=torch.Generator().manual_seed(0))
print(f"fine network on 16384 points, on {machine_summary()}")
with torch.inference_mode():
    out = {n: net(x) for n, net in nets.items()}
    print(f"  largest output difference {(out[list(nets)[0]] - out[list(nets)[1]]).abs().max():.3f} "
          f"(outputs up to {out[list(nets)[0]].abs().max():.1f})")
    t = time_pair(lambda: plain.fine(x), lambda: swapped(x), PairedProtocol(rounds=9, order="alternate"))
    print(f"  int8-ptq-both: {1e3 * t.reference_latency_s:.1f} ms")
    print(f"  with int8 fp32-output heads: {1e3 * t.latency_s:.1f} ms; paired {t.summary()}")
    with torch.profiler.profile() as prof:
        swapped(x)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))

# Is it the switch? The unmodified network alone, then each call followed by one fp32-output head call.
head = CodesLinear(pair.fine.alpha_linear)
h = torch.quantize_per_tensor(torch.rand(16384, 256, generator=torch.Generator().manual_seed(1)), 0.01, 0,
                              torch.quint8)


with torch.inference_mode():
    alone, head_alone = median_time(lambda: plain.fine(x), 10), median_time(lambda: head(h), 10)
    mixed = median_time(lambda: (plain.fine(x), head(h)), 10)
print(f"unmodified network alone {1e3 * alone:.1f} ms; the head op alone {1e3 * head_alone:.2f} ms; "
      f"network then head op, repeated, {1e3 * mixed:.1f} ms a pair")
