"""The roofline of this machine on the shipped `object` checkpoint: fp32, bf16 (where native) and static
int8, each as a share of its precision's GEMM rate, with the render time split by stage (the table is
printed; `nerf-eval roofline` writes it with a plot). Targets (issue 21): whole-render throughput at
least 50% of the roof of its precision; where a model misses it the stage split says where time goes."""

from pathlib import Path

import pytest
import torch

from nerf_eval.checkpoint import load_checkpoint
from nerf_eval.compress import get_compressor
from nerf_eval.hardware import native_bf16
from nerf_eval.measure import calibration_batch, latency_batch
from nerf_eval.render import RenderSettings
from nerf_eval.roofline import measure_roofline, roofline_markdown
from nerf_eval.scenes import load_scene

RUN = Path(__file__).resolve().parents[1] / "checkpoints" / "object"


@pytest.mark.benchmark(group="roofline")
def test_roofline_of_this_machine(benchmark):
    if not (RUN / "model_card.json").exists():
        pytest.skip("object: no finished checkpoint (checkpoints/object/model_card.json missing)")
    pair = load_checkpoint(RUN / "checkpoint.pt").eval()
    scene = load_scene("object")
    calibration = calibration_batch(scene, 2048)
    names = ["fp32", "int8-ptq-both"] + (["bf16"] if native_bf16() else [])
    models = {n: pair if n == "fp32" else get_compressor(n).compress(pair, calibration) for n in names}
    rays = latency_batch(scene, 256)
    result = benchmark.pedantic(measure_roofline, args=(models, rays, RenderSettings()), kwargs={"rounds": 3},
                                rounds=1, iterations=1)
    print("\n" + roofline_markdown(result))
    benchmark.extra_info["roofline"] = result.to_dict()
    for m in result.models:
        assert m.render_s > 0 and 0 < sum(m.stages_s.values()) <= m.render_s
        assert torch.isfinite(torch.tensor([m.mlp_share, m.render_share])).all()
        if m.render_share < 0.5:
            print(f"{m.name}: whole render at {100 * m.render_share:.0f}% of the {m.dtype} roof (target 50%); "
                  f"network {100 * m.stages_s['network'] / m.render_s:.0f}% of its time")
