"""`nerf-eval train`: train a coarse+fine NeRF (resumable; Ctrl-C saves a checkpoint)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nerf_eval.cli.arguments import SCENE_HELP, check_out_dir, check_samples, parse_device, require
from nerf_eval.errors import NerfEvalError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from nerf_eval.train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a coarse+fine NeRF (resumable; Ctrl-C saves a checkpoint)")
    p.add_argument("--scene", required=True, help=SCENE_HELP)
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
    half = p.add_mutually_exclusive_group()
    half.add_argument("--bf16", dest="bf16", action="store_true", default=None,
                      help="bf16 autocast around the MLP (default: when this CPU has native bf16 matmuls)")
    half.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in fp32")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--scale", type=float, default=1.0, help="resolution scale of the scene")
    p.add_argument("--checkpoint-every", type=float, default=d.checkpoint_every_s, help="seconds")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="where the networks train: cpu (default) or cuda; a run may "
                   "resume on another device than the one that saved it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--force", action="store_true", help="start over in a non-empty --out")
    p.add_argument("--estimate", action="store_true", help="time a few steps of each phase here and print how "
                   "long the run (or, with --resume, its rest) would take; trains nothing and writes nothing")
    p.set_defaults(func=run)


def _check_train_args(args) -> None:
    """One-line errors for settings the trainer cannot run with (before any scene is built)."""
    require(args, steps="nonnegative", warmstart_steps="nonnegative", warmstart_points="count", batch_rays="count",
             lr="learning_rate", lr_final="learning_rate", precrop_steps="nonnegative", precrop_frac="fraction",
             scale="fraction", checkpoint_every="positive", threads="threads")
    if args.steps + args.warmstart_steps == 0:
        raise NerfEvalError("--steps 0 with no warm start: nothing to train")
    check_samples(args)


def run(args: argparse.Namespace) -> int:
    import torch

    from nerf_eval.scenes import make_scene, parse_scene_spec
    from nerf_eval.train import TrainConfig, Trainer, write_history

    _check_train_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = parse_device(args.device)
    ckpt = args.out / "checkpoint.pt"
    if not args.resume and not args.estimate:
        check_out_dir(args.out, args.force)
    if args.resume and not ckpt.exists():
        raise NerfEvalError(f"{ckpt}: nothing to resume (no checkpoint); drop --resume to start a run")
    analytic = None
    spec = parse_scene_spec(args.scene)
    if spec.kind == "builtin":
        scene, analytic = make_scene(spec.target, **spec.options)
    else:
        if args.warmstart_steps:
            raise NerfEvalError(f"{args.scene}: --warmstart-steps needs a built-in analytic scene")
        scene = spec.load()
    scene = scene.rescaled(args.scale)
    if args.bf16 is None:
        from nerf_eval.hardware import native_bf16, slow_dtype_note

        args.bf16 = native_bf16(device)
        if not args.bf16:
            why = f"{device} has no bf16" if device.type == "cuda" else slow_dtype_note([torch.bfloat16])
            print(f"training in fp32: {why}; --bf16 forces it", file=sys.stderr)
    cfg = TrainConfig(steps=args.steps, batch_rays=args.batch_rays, lr=args.lr, lr_final=args.lr_final,
                      n_coarse=args.n_coarse, n_fine=args.n_fine, precrop_steps=args.precrop_steps,
                      precrop_frac=args.precrop_frac, bf16=args.bf16, seed=args.seed,
                      warmstart_steps=args.warmstart_steps, warmstart_points=args.warmstart_points,
                      checkpoint_every_s=args.checkpoint_every)
    trainer = Trainer(scene, cfg, analytic=analytic, device=device)
    if args.resume:
        trainer.load(ckpt)
        print(f"resuming {ckpt} at step {trainer.step}/{trainer.total_steps}", file=sys.stderr)
    if args.estimate:
        est = trainer.estimate()
        parts = [f"{est['steps_left'][ph]} {ph} steps x {s:.2f} s" for ph, s in est["per_step_s"].items()]
        print(f"estimate on {device} ({est['threads']} threads, {'bf16' if est['bf16'] else 'fp32'}): "
              f"{' + '.join(parts) or 'nothing left'} = {est['seconds'] / 60:.1f} min", file=sys.stderr)
        print(json.dumps(est))
        return 0
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
