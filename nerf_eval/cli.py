"""`nerf-eval` command line: scene, train, evaluate, compress, render, report.

Every subcommand turns a bad input into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nerf_eval.errors import NerfEvalError


def _add_scene(sub) -> None:
    p = sub.add_parser("scene", help="write a built-in procedural scene in the Blender layout (with depth)")
    p.add_argument("name", help="built-in scene name (object, forward)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="write into a non-empty directory")
    p.set_defaults(func=cmd_scene)


def _check_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NerfEvalError(f"{out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise NerfEvalError(f"{out}: directory exists and is not empty; refusing to write (use --force)")


def cmd_scene(args) -> int:
    from nerf_eval.scenes.blender import write_blender
    from nerf_eval.scenes.procedural import BUILTIN_SCENES, make_scene

    if args.name not in BUILTIN_SCENES:
        raise NerfEvalError(f"{args.name}: unknown built-in scene; choose from {', '.join(sorted(BUILTIN_SCENES))}")
    _check_out_dir(args.out_dir, args.force)
    scene, _ = make_scene(args.name, seed=args.seed)
    write_blender(scene, args.out_dir)
    print(f"wrote {args.name} ({len(scene.poses)} views, {scene.width}x{scene.height}) to {args.out_dir}")
    return 0


def _add_train(sub) -> None:
    from nerf_eval.train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a coarse+fine NeRF (resumable; Ctrl-C saves a checkpoint)")
    p.add_argument("--scene", required=True, help="built-in name, Blender/LLFF directory or .npz")
    p.add_argument("--out", required=True, type=Path, help="run directory (checkpoint.pt, train_log.jsonl)")
    p.add_argument("--steps", type=int, default=d.steps, help="photometric steps")
    p.add_argument("--warmstart-steps", type=int, default=d.warmstart_steps,
                   help="analytic-field warm-start steps first (built-in scenes only)")
    p.add_argument("--warmstart-points", type=int, default=d.warmstart_points)
    p.add_argument("--batch-rays", type=int, default=d.batch_rays)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-final", type=float, default=d.lr_final)
    p.add_argument("--n-coarse", type=int, default=d.n_coarse, help="coarse samples per ray while training")
    p.add_argument("--n-fine", type=int, default=d.n_fine, help="fine samples per ray while training")
    p.add_argument("--precrop-steps", type=int, default=d.precrop_steps)
    p.add_argument("--precrop-frac", type=float, default=d.precrop_frac)
    p.add_argument("--no-bf16", action="store_true", help="train in fp32 instead of bf16 autocast")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--scale", type=float, default=1.0, help="resolution scale of the scene")
    p.add_argument("--checkpoint-every", type=float, default=d.checkpoint_every_s, help="seconds")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--force", action="store_true", help="start over in a non-empty --out")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import torch

    from nerf_eval.scenes import load_scene
    from nerf_eval.scenes.procedural import BUILTIN_SCENES, make_scene
    from nerf_eval.train import TrainConfig, Trainer, write_history

    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = args.out / "checkpoint.pt"
    if not args.resume:
        _check_out_dir(args.out, args.force)
    elif not ckpt.exists():
        raise NerfEvalError(f"{ckpt}: nothing to resume (no checkpoint); drop --resume to start a run")
    analytic = None
    if args.scene in BUILTIN_SCENES:
        scene, analytic = make_scene(args.scene)
    else:
        if args.warmstart_steps:
            raise NerfEvalError(f"{args.scene}: --warmstart-steps needs a built-in analytic scene")
        scene = load_scene(args.scene)
    scene = scene.rescaled(args.scale)
    cfg = TrainConfig(steps=args.steps, batch_rays=args.batch_rays, lr=args.lr, lr_final=args.lr_final,
                      n_coarse=args.n_coarse, n_fine=args.n_fine, precrop_steps=args.precrop_steps,
                      precrop_frac=args.precrop_frac, bf16=not args.no_bf16, seed=args.seed,
                      warmstart_steps=args.warmstart_steps, warmstart_points=args.warmstart_points,
                      checkpoint_every_s=args.checkpoint_every)
    trainer = Trainer(scene, cfg, analytic=analytic)
    if args.resume:
        trainer.load(ckpt)
        print(f"resuming {ckpt} at step {trainer.step}/{trainer.total_steps}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        trainer.run(ckpt)
    except KeyboardInterrupt:
        write_history(trainer.history, args.out / "train_log.jsonl")
        print(f"interrupted at step {trainer.step}; checkpoint saved to {ckpt} (continue with --resume)",
              file=sys.stderr)
        return 130
    write_history(trainer.history, args.out / "train_log.jsonl")
    print(json.dumps({"checkpoint": str(ckpt), "steps": trainer.step, "wall_time_s": round(trainer.wall_time, 1)}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nerf-eval", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_scene, _add_train):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NerfEvalError as e:
        print(f"nerf-eval: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
