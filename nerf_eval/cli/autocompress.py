"""`nerf-eval autocompress`: search pruning x precision compositions within a PSNR budget."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nerf_eval.cli.arguments import require
from nerf_eval.errors import NerfEvalError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("autocompress", help="search pruning x precision compositions for the fastest (or smallest) "
                                            "model within a PSNR budget; writes it and its Pareto front")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--scene", required=True, help="calibration rays from its train views, search on its val "
                                                  "views, confirmation on its test views")
    p.add_argument("--max-drop", type=float, default=0.3, help="PSNR budget in dB against fp32 (default 0.3)")
    p.add_argument("--objective", choices=("speed", "size"), default="speed")
    p.add_argument("--out", required=True, type=Path,
                   help="directory for model.pt, search.md, search.json and front.png")
    p.add_argument("--budget-minutes", type=float, default=20.0, help="time for the whole search (default 20)")
    p.add_argument("--scale", type=float, default=0.5, help="resolution scale of the views measured (default 0.5)")
    p.add_argument("--ratios", default=None, help="pruning ratios tried for each network (default: the rule's "
                                                  "declared search values, 0,0.15,0.3,0.5)")
    p.add_argument("--precisions", default=None,
                   help="per-network precisions tried, from fp32,bf16,int8 (default: all three, without bf16 where "
                        "this CPU emulates it)")
    p.add_argument("--int8-heads", choices=("int8", "fp32"), default=None,
                   help="weights of the int8 candidates' density/colour heads, whose outputs stay fp32: int8 "
                        "(default, as int8-ptq-* gives them) or fp32 (int8-ptq-*:heads=fp32)")
    p.add_argument("--accelerators", default=None,
                   help="accelerators appended to the fastest feasible candidates, comma-separated registry names: "
                        "the first of each base alone, then one of each base composed in this order, for every "
                        "combination (default: the compressors that declare the accelerator role at their search "
                        "points, samples at 64/48/32 fine and default/32 coarse samples, occupancy, coarse-grid; "
                        "'' for none)")
    p.add_argument("--calibration-views", type=int, default=2)
    p.add_argument("--confirm-views", type=int, default=2)
    p.add_argument("--calibration-rays", type=int, default=4096)
    p.add_argument("--latency-rays", type=int, default=256,
                   help="rays of the batch each candidate and fp32 render alternately for the speed-up")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nerf_eval.autocompress import (
        PRECISIONS,
        SearchOptions,
        SpecSource,
        front_plot,
        markdown,
        search,
    )
    from nerf_eval.checkpoint import file_hash, load_checkpoint
    from nerf_eval.compress.saved import save_compressed
    from nerf_eval.measure.batches import calibration_batch
    from nerf_eval.measure.spec import portable
    from nerf_eval.render import RenderSettings
    from nerf_eval.report import atomic_directory, refuse_to_replace
    from nerf_eval.scenes import load_scene

    require(args, max_drop="nonnegative", budget_minutes="positive", scale="fraction", calibration_views="count",
             confirm_views="count", calibration_rays="count", latency_rays="count")
    out = args.out
    refuse_to_replace(out, args.force)
    try:
        ratios = None if args.ratios is None else tuple(float(r) for r in args.ratios.split(",") if r.strip())
    except ValueError:
        raise NerfEvalError(f"--ratios {args.ratios!r}: give comma-separated numbers in [0, 1)") from None
    if args.precisions is None:
        import torch

        from nerf_eval.hardware import native_bf16, slow_dtype_note

        precisions = PRECISIONS
        if not native_bf16():
            precisions = tuple(p for p in PRECISIONS if p != "bf16")
            print(f"autocompress: not trying bf16: {slow_dtype_note([torch.bfloat16])}; --precisions "
                  "fp32,bf16,int8 forces it", file=sys.stderr)
    else:
        precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    options = SearchOptions(max_drop=args.max_drop, objective=args.objective, budget_s=args.budget_minutes * 60,
                            ratios=ratios, precisions=precisions,
                            **({} if args.int8_heads is None else {"int8_heads": args.int8_heads}),
                            calibration_views=args.calibration_views,
                            confirm_views=args.confirm_views, latency_rays=args.latency_rays,
                            accelerators=None if args.accelerators is None else
                            tuple(a.strip() for a in args.accelerators.split(",") if a.strip()))
    pair = load_checkpoint(args.checkpoint)
    scene = load_scene(args.scene).rescaled(args.scale)
    calibration = calibration_batch(scene, args.calibration_rays)
    source = SpecSource(scene=portable(args.scene, Path.cwd()), checkpoint_sha256=file_hash(args.checkpoint),
                        scale=args.scale)
    result = search(pair, scene, calibration, options, RenderSettings(white_bkgd=scene.white_bkgd), source=source)
    with atomic_directory(out, args.force) as tmp:
        (tmp / "search.md").write_text(markdown(result))
        (tmp / "search.json").write_text(json.dumps(result.to_dict(), indent=1, default=float))
        front_plot(result, tmp / "front.png")
        if result.chosen is not None:
            save_compressed(tmp / "model.pt", result.pair, result.chosen.name,
                            source={"checkpoint": str(args.checkpoint), "sha256": source.checkpoint_sha256,
                                    "scene": str(args.scene), "calibration_rays": args.calibration_rays, "seed": 0,
                                    "autocompress": {"max_drop": args.max_drop, "objective": args.objective,
                                                     "confirmed_drop": result.chosen.confirmed_drop}})
    print(markdown(result))
    if result.chosen is None:
        raise NerfEvalError(f"autocompress: no candidate stayed within {args.max_drop} dB on the held-out views "
                            f"(search written to {out})")
    print(json.dumps({"out": str(out / "model.pt"), "compressor": result.chosen.name,
                      "held_out_drop_db": round(result.chosen.confirmed_drop, 3),
                      "speedup": round(result.chosen.speedup, 2), "size_ratio": round(result.chosen.size_ratio, 3)}))
    return 0
