"""`nerf-eval roofline`: this machine's GEMM rate per precision and where each model's render time
goes against it (roofline.md/json/png)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nerf_eval.cli.arguments import SCENE_HELP, require
from nerf_eval.errors import NerfEvalError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("roofline", help="this machine's GEMM rate per precision, and where each model's render "
                                        "time goes against it: roofline.md/json/png")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--scene", required=True, help=SCENE_HELP)
    p.add_argument("--compressors", default="fp32,bf16,int8-ptq-both",
                   help="comma-separated names or globs (default: fp32,bf16,int8-ptq-both)")
    p.add_argument("--rays", type=int, default=1024, help="seeded test rays rendered (default 1024)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    p.add_argument("--calibration-rays", type=int, default=2048)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", type=Path, default=None, help="directory for roofline.md/json/png (default: print only)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from nerf_eval.checkpoint import load_checkpoint
    from nerf_eval.compress import REGISTRY, get_compressor
    from nerf_eval.hardware import slow_dtype_note, slow_dtypes
    from nerf_eval.measure import calibration_batch, latency_batch
    from nerf_eval.render import RenderSettings
    from nerf_eval.report import atomic_directory, refuse_to_replace
    from nerf_eval.roofline import measure_roofline, roofline_markdown, roofline_plot
    from nerf_eval.scenes import load_scene

    require(args, rays="count", rounds="count", calibration_rays="count", threads="threads")
    if args.out is not None:
        refuse_to_replace(args.out, args.force)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = REGISTRY.select([n.strip() for n in args.compressors.split(",") if n.strip()])
    if not names:
        raise NerfEvalError(f"--compressors {args.compressors!r}: names no model to measure (e.g. fp32,int8-ptq-both)")
    pair = load_checkpoint(args.checkpoint).eval()
    scene = load_scene(args.scene)
    calibration = calibration_batch(scene, args.calibration_rays)
    rays = latency_batch(scene, args.rays)
    models = {}
    for name in names:
        model = pair if name == "fp32" else get_compressor(name).compress(pair, calibration)
        slow = slow_dtypes(model)
        if slow:
            print(f"roofline: {name} skipped: {slow_dtype_note(slow)}", file=sys.stderr)
            continue
        models[name] = model
    if not models:
        raise NerfEvalError(f"--compressors {args.compressors!r}: every model named was skipped; nothing to measure")
    result = measure_roofline(models, rays, RenderSettings(white_bkgd=scene.white_bkgd), rounds=args.rounds,
                              progress=lambda m: print(f"roofline: {m}", file=sys.stderr))
    text = roofline_markdown(result)
    if args.out is not None:
        with atomic_directory(args.out, args.force) as tmp:
            (tmp / "roofline.md").write_text(text)
            (tmp / "roofline.json").write_text(json.dumps(result.to_dict(), indent=1))
            roofline_plot(result, tmp / "roofline.png")
    print(text)
    return 0
