"""`nerf-eval compress`: compress a checkpoint with a registered compressor and save it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nerf_eval.atomic import check_output_file
from nerf_eval.cli.arguments import require
from nerf_eval.interrupt import interruptible


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="compress a checkpoint with a registered compressor and save it")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--scene", required=True, help="scene whose training views give the calibration rays")
    p.add_argument("--compressor", required=True, help="registered name, e.g. int8-ptq-both or prune-activation:0.3")
    p.add_argument("--out", required=True, type=Path, help="file to write (loadable by evaluate)")
    p.add_argument("--calibration-rays", type=int, default=4096)
    p.add_argument("--finetune-steps", type=int, default=0,
                   help="recovery fine-tune of a pruned (float) result on training rays, reported separately")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.set_defaults(func=run)


@interruptible("compress")
def run(args: argparse.Namespace) -> int:
    import time

    from nerf_eval.checkpoint import file_hash, load_checkpoint
    from nerf_eval.compress import get_compressor, serialized_size
    from nerf_eval.compress.saved import save_compressed
    from nerf_eval.scenes import load_scene

    require(args, calibration_rays="count", finetune_steps="nonnegative")
    check_output_file(args.out, args.force, "compressed model")
    compressor = get_compressor(args.compressor)
    pair = load_checkpoint(args.checkpoint)
    scene = load_scene(args.scene)
    calibration = scene.sample_rays(args.calibration_rays, "train", args.seed)
    t0 = time.perf_counter()
    small = compressor.compress(pair, calibration)
    if args.finetune_steps:
        from nerf_eval.compress.finetune import finetune

        small = finetune(small, scene, args.finetune_steps, seed=args.seed, progress=True)
    elapsed = time.perf_counter() - t0
    save_compressed(args.out, small, args.compressor, overwrite=args.force,
                    source={"checkpoint": str(args.checkpoint), "sha256": file_hash(args.checkpoint),
                            "scene": str(args.scene), "calibration_rays": args.calibration_rays, "seed": args.seed,
                            "finetune_steps": args.finetune_steps})
    print(json.dumps({"out": str(args.out), "compressor": args.compressor, "compress_s": round(elapsed, 2),
                      "size_bytes": serialized_size(small), "fp32_size_bytes": serialized_size(pair)}))
    return 0
