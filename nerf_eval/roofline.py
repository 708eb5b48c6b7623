"""Where a render's time goes on this machine, against what the machine can compute.

For each precision the MLP can run in (fp32, bf16, fp16, int8 with this machine's int8 engine) the GEMM
rate at the MLP's shape (points x 256 @ 256 x 256) is the roof. For each model (fp32 and compressed)
the report gives the MLP alone on encoded points and the whole render of a ray batch (sampling,
encoding, network, compositing, each timed), both as useful MLP FLOP/s and as a share of the roof of
the model's precision. A render far below its roof with a large non-network share is limited by the
code around the network; one with a small network share of its own roof by the network's kernels.

Timings of the models are interleaved round by round, so a change of load falls on all of them alike;
shares are still only as steady as the machine (record the CPU with every figure).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from nerf_eval.compress.quantize import STATIC_INT8_META
from nerf_eval.machine import machine_record
from nerf_eval.model import ModelPair
from nerf_eval.render import Rays, RenderSettings, StageClock, render_chunked
from nerf_eval.throughput import gemm_rate, network_flops_per_point

STAGES = ("sampling", "encoding", "network", "compositing")
DTYPES = ("fp32", "bf16", "fp16", "int8")


def network_dtype(net: nn.Module) -> str:
    """The precision most of `net`'s MLP work runs in: int8 (static int8 graph), a half dtype, or fp32."""
    if STATIC_INT8_META in getattr(net, "meta", {}):
        return "int8"
    kinds = {p.dtype for p in net.parameters()} | {b.dtype for b in net.buffers()}
    if torch.bfloat16 in kinds:
        return "bf16"
    if torch.float16 in kinds:
        return "fp16"
    return "fp32"


def _input_width(pair: ModelPair) -> int:
    return pair.config.input_ch + (pair.config.input_ch_views if pair.config.use_viewdirs else 0)


@dataclass
class ModelRoofline:
    """One model's figures: the MLP alone and a whole render, each against its precision's roof."""

    name: str
    dtype: str
    roof_gflops: float
    mlp_gflops: float
    render_s: float
    render_gflops: float
    rays_per_s: float
    stages_s: dict[str, float] = field(default_factory=dict)

    @property
    def mlp_share(self) -> float:
        return self.mlp_gflops / self.roof_gflops

    @property
    def render_share(self) -> float:
        return self.render_gflops / self.roof_gflops

    def to_dict(self) -> dict:
        return {**asdict(self), "mlp_share": self.mlp_share, "render_share": self.render_share}


@dataclass
class Roofline:
    """The machine, its roofs per precision, and every model measured against them."""

    machine: dict
    roofs: dict[str, float]
    rays: int
    settings: dict
    models: list[ModelRoofline]

    def to_dict(self) -> dict:
        return {"machine": self.machine, "roofs_gflops": self.roofs, "rays": self.rays, "settings": self.settings,
                "models": [m.to_dict() for m in self.models]}


def measure_roofline(models: dict[str, ModelPair], rays: Rays, settings: RenderSettings = RenderSettings(),
                     rounds: int = 3, mlp_points: int = 65536, gemm_rows: int = 65536,
                     progress: Callable[[str], None] | None = None) -> Roofline:
    """Measure the roofs and every model in `models` (name -> pair) on the same `rays`, interleaved."""
    say = progress or (lambda _: None)
    machine = machine_record()
    dtypes = {name: network_dtype(pair.fine if pair.fine is not None else pair.coarse) for name, pair in models.items()}
    used = sorted(set(dtypes.values()), key=DTYPES.index)
    roofs = {}
    for d in DTYPES:
        if d not in used:
            say(f"GEMM rate {d}")
            roofs[d] = gemm_rate(d, rows=gemm_rows)
    roof_rounds: dict[str, list[float]] = {d: [] for d in used}
    gen = torch.Generator().manual_seed(0)
    renders: dict[str, list[float]] = {n: [] for n in models}
    stages: dict[str, list[dict[str, float]]] = {n: [] for n in models}
    mlp: dict[str, list[float]] = {n: [] for n in models}
    points = torch.randn(mlp_points, _input_width(next(iter(models.values()))), generator=gen)
    names = list(models)
    with torch.inference_mode():
        for name in names:  # warm-up: first calls allocate and pick kernels
            render_chunked(models[name], rays[:settings.chunk], settings)
            models[name].coarse(points[:1024])
        for r in range(rounds):
            say(f"round {r + 1}/{rounds}")
            for d in used:  # the roofs of the precisions in use, in every round beside the models
                roof_rounds[d].append(gemm_rate(d, rows=gemm_rows, repeats=1))
            for name in names[r % len(names):] + names[:r % len(names)]:
                pair = models[name]
                net = pair.fine if pair.fine is not None else pair.coarse
                start = time.perf_counter()
                net(points)
                mlp[name].append(time.perf_counter() - start)
                clock = StageClock()
                start = time.perf_counter()
                render_chunked(pair, rays, settings, clock=clock)
                renders[name].append(time.perf_counter() - start)
                stages[name].append({s: clock.seconds.get(s, 0.0) for s in STAGES})
    roofs.update({d: statistics.median(v) for d, v in roof_rounds.items()})
    roofs = {d: roofs[d] for d in DTYPES}
    n_coarse, n_fine = settings.n_coarse, settings.n_fine
    out = []
    for name, pair in models.items():
        fine = pair.fine if pair.fine is not None and n_fine > 0 else None
        flops = len(rays) * n_coarse * network_flops_per_point(pair.coarse)
        if fine is not None:  # the fine pass sees the coarse samples again, with the fine ones
            flops += len(rays) * (n_coarse + n_fine) * network_flops_per_point(fine)
        net = fine if fine is not None else pair.coarse
        median_round = sorted(range(rounds), key=renders[name].__getitem__)[(rounds - 1) // 2]
        render_s = renders[name][median_round]  # the stages are those of this same round
        out.append(ModelRoofline(
            name=name, dtype=dtypes[name], roof_gflops=roofs[dtypes[name]],
            mlp_gflops=mlp_points * network_flops_per_point(net) / statistics.median(mlp[name]) / 1e9,
            render_s=render_s, render_gflops=flops / render_s / 1e9, rays_per_s=len(rays) / render_s,
            stages_s=stages[name][median_round]))
    return Roofline(machine, roofs, len(rays), {"n_coarse": n_coarse, "n_fine": n_fine, "chunk": settings.chunk,
                                                "rounds": rounds, "mlp_points": mlp_points}, out)


def roofline_markdown(r: Roofline) -> str:
    """The roofs and the per-model table, with each stage's share of the render time."""
    m = r.machine
    lines = [f"# Roofline: {m['cpu']} ({m['threads']} threads, torch {m['torch']})", "",
             f"Machine: {m.get('summary', m['cpu'])}.", "",
             f"CPU flags: {', '.join(m['flags']) or 'unknown'}; int8 engine: {m['int8_engine']} ({m['int8_engine_reason']}); "
             + "".join(f"{d} Linear kernel: {k}; " for d, k in m.get("linear_kernels", {}).items())
             + (f"int8 heads' kernel (`:heads=int8`): {m['int8_head_kernel']}; " if "int8_head_kernel" in m else "")
             + f"load average when it started: {m.get('load_average_1min')}.",
             "", "| precision | GEMM GFLOP/s (points x 256 @ 256 x 256) |", "|---|---|"]
    lines += [f"| {d} | {v:.1f} |" for d, v in r.roofs.items()]
    lines += ["", f"Whole render: {r.rays} rays at {r.settings['n_coarse']}+{r.settings['n_fine']} samples, median of "
              f"{r.settings['rounds']} interleaved rounds (stages: that round's); MLP alone: {r.settings['mlp_points']} encoded points.", "",
              "| model | precision | MLP GFLOP/s | MLP % of roof | render s | rays/s | render GFLOP/s | render % of roof | "
              + " | ".join(f"{s} %" for s in STAGES) + " | other % |",
              "|---|---|---|---|---|---|---|---|" + "---|" * (len(STAGES) + 1)]
    for x in r.models:
        parts = [100.0 * x.stages_s[s] / x.render_s for s in STAGES]
        other = max(0.0, 100.0 - sum(parts))
        lines.append(f"| {x.name} | {x.dtype} | {x.mlp_gflops:.1f} | {100 * x.mlp_share:.0f} | {x.render_s:.3f} | "
                     f"{x.rays_per_s:.0f} | {x.render_gflops:.1f} | {100 * x.render_share:.0f} | "
                     + " | ".join(f"{p:.0f}" for p in parts) + f" | {other:.0f} |")
    return "\n".join(lines) + "\n"


def roofline_plot(r: Roofline, path: str | Path) -> None:
    """Two panels: each model's MLP and render share of its roof; the stage breakdown of its render time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [x.name for x in r.models]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 0.6 * len(names) + 2.5))
    y = range(len(names))
    a.barh([i + 0.2 for i in y], [100 * x.mlp_share for x in r.models], height=0.4, label="MLP alone")
    a.barh([i - 0.2 for i in y], [100 * x.render_share for x in r.models], height=0.4, label="whole render")
    a.axvline(50, color="grey", ls="--", lw=1)
    a.set_yticks(list(y), [f"{x.name} ({x.dtype})" for x in r.models])
    a.set_xlabel("% of the GEMM rate of the model's precision")
    a.legend(loc="lower right")
    left = [0.0] * len(names)
    for s in STAGES + ("other",):
        vals = [x.stages_s[s] if s != "other" else max(0.0, x.render_s - sum(x.stages_s.values())) for x in r.models]
        b.barh(list(y), vals, left=left, label=s)
        left = [lft + v for lft, v in zip(left, vals)]
    b.set_yticks(list(y), names)
    b.set_xlabel(f"seconds for {r.rays} rays")
    b.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{r.machine['cpu']}, {r.machine['threads']} threads, int8 engine {r.machine['int8_engine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
