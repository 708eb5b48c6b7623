"""`nerf-eval` command line: scene, train, evaluate, compress, autocompress, render, report, card, roofline.

Every subcommand turns a bad input into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from nerf_eval.atomic import check_output_dir, check_output_file, interruptible, sigterm_as_keyboard_interrupt
from nerf_eval.errors import NerfEvalError

SCENE_HELP = ("built-in name, Blender/LLFF directory or .npz, optionally with loader settings after a colon, "
              "e.g. DIR:factor=4,llffhold=8,ndc=false (LLFF: factor, llffhold, ndc, recenter, bd_factor, spherify; "
              "Blender: white_bkgd, half_res, near, far; .npz: near, far, white_bkgd; built-in: seed, size)")


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


def _device(name: str, flag: str = "--device"):
    """`--device` as a torch.device, or a one-line error when it is not usable here."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise NerfEvalError(f"{flag} {name}: not a device name (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NerfEvalError(f"{flag} {name}: CUDA is not available to this torch ({torch.__version__})")
    if device.type not in ("cpu", "cuda"):
        raise NerfEvalError(f"{flag} {name}: only cpu and cuda are supported")
    return device


_RANGES = {
    "count": (lambda v: v >= 1, "must be at least 1"),
    "nonnegative": (lambda v: v >= 0, "must be >= 0"),
    "positive": (lambda v: v > 0, "must be > 0"),
    "fraction": (lambda v: 0.0 < v <= 1.0, "must be in (0, 1]"),
}


def _require(args, **ranges: str) -> None:
    """One-line errors for numeric options out of range, e.g. `_require(args, scale="fraction", repeats="count")`;
    an option left at None is not checked."""
    for dest, kind in ranges.items():
        value = getattr(args, dest)
        ok, rule = _RANGES[kind]
        if value is not None and not ok(value):
            raise NerfEvalError(f"--{dest.replace('_', '-')} {value:g}: {rule}")


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
    p.set_defaults(func=cmd_train)


def _check_samples(args) -> None:
    """--n-coarse / --n-fine as the sampler needs them (train and evaluate)."""
    if args.n_fine < 0 or args.n_coarse < (3 if args.n_fine > 0 else 2):
        raise NerfEvalError(f"--n-coarse {args.n_coarse} / --n-fine {args.n_fine}: need n_fine >= 0 and "
                            "n_coarse >= 2 (>= 3 with fine samples)")


def _check_train_args(args) -> None:
    """One-line errors for settings the trainer cannot run with (before any scene is built)."""
    _require(args, steps="nonnegative", warmstart_steps="nonnegative", warmstart_points="count", batch_rays="count",
             lr="positive", lr_final="positive", precrop_steps="nonnegative", precrop_frac="fraction",
             scale="fraction", checkpoint_every="positive", threads="count")
    if args.steps + args.warmstart_steps == 0:
        raise NerfEvalError("--steps 0 with no warm start: nothing to train")
    _check_samples(args)


def cmd_train(args) -> int:
    import torch

    from nerf_eval.scenes import make_scene, parse_scene_spec
    from nerf_eval.train import TrainConfig, Trainer, write_history

    _check_train_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    ckpt = args.out / "checkpoint.pt"
    if not args.resume and not args.estimate:
        _check_out_dir(args.out, args.force)
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


def _add_evaluate(sub) -> None:
    from nerf_eval.render import RenderSettings

    d = RenderSettings()
    p = sub.add_parser("evaluate", help="render views of a scene with a checkpoint and measure them")
    p.add_argument("--checkpoint", required=True, type=Path,
                   help="float checkpoint (.pt or nerf-pytorch .tar) or a compressed model from `compress`")
    p.add_argument("--scene", required=True, help=SCENE_HELP)
    p.add_argument("--split", default="test", help="train, val, test or all (default: test)")
    p.add_argument("--views", default=None, help="positions within the split, e.g. 0,8,16 (default: all)")
    p.add_argument("--scale", type=float, default=1.0, help="resolution scale of the scene, in (0, 1]")
    p.add_argument("--near", type=float, default=None, help="override the scene's near bound")
    p.add_argument("--far", type=float, default=None, help="override the scene's far bound")
    p.add_argument("--n-coarse", type=int, default=d.n_coarse, help="coarse samples per ray")
    p.add_argument("--n-fine", type=int, default=d.n_fine, help="fine samples per ray")
    p.add_argument("--chunk", type=int, default=d.chunk, help="rays per forward pass (bounds memory)")
    p.add_argument("--device", default="cpu", help="where a float checkpoint renders: cpu (default) or cuda")
    p.add_argument("--json", type=Path, default=None, help="write mean and per-view metrics to this file")
    p.add_argument("--save", type=Path, default=None, help="write each view as PNG and float32 .npy here")
    p.add_argument("--force", action="store_true", help="overwrite --json and write into a non-empty --save")
    p.add_argument("--no-flip", action="store_true", help="skip the FLIP metric")
    p.set_defaults(func=cmd_evaluate)


def _parse_views(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        views = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NerfEvalError(f"--views {text!r}: expected comma-separated view positions, e.g. 0,8,16") from None
    if not views:
        raise NerfEvalError(f"--views {text!r}: no view positions given")
    return views


def _check_evaluate_args(args) -> None:
    _require(args, scale="fraction", chunk="count")
    _check_samples(args)
    if args.json is not None:
        check_output_file(args.json, args.force, "--json file")
    if args.save is not None:
        _check_out_dir(args.save, args.force)
        check_output_dir(args.save, True, "--save directory")  # its parent, before the render


def _evaluation_scene(args):
    """The scene to evaluate on, rescaled, with --near/--far applied (refused for NDC scenes)."""
    from dataclasses import replace

    from nerf_eval.scenes import load_scene

    scene = load_scene(args.scene).rescaled(args.scale)
    if args.near is None and args.far is None:
        return scene
    if scene.ndc:
        raise NerfEvalError(f"{args.scene}: --near/--far do not apply to an NDC scene (its bounds are 0 and 1)")
    near = scene.near if args.near is None else args.near
    far = scene.far if args.far is None else args.far
    if not 0.0 <= near < far:
        raise NerfEvalError(f"--near {near:g} --far {far:g}: need 0 <= near < far")
    return replace(scene, near=float(near), far=float(far))


def _finite_or_none(x):
    import math

    return x if not isinstance(x, float) or math.isfinite(x) else None


def _metrics_table(views: list[int], per_view: list[dict], mean: dict) -> str:
    keys = [k for k in ("psnr", "ssim", "flip", "sharpness", "depth_error") if k in mean]
    rows = [f"{'view':>6} " + " ".join(f"{k:>11}" for k in keys)]
    rows += [f"{v:>6} " + " ".join(f"{m[k]:>11.4f}" for k in keys) for v, m in zip(views, per_view)]
    rows.append(f"{'mean':>6} " + " ".join(f"{mean[k]:>11.4f}" for k in keys))
    rows.append(f"worst view: {mean['worst_view']} (psnr {mean['worst_psnr']:.2f} dB)")
    return "\n".join(rows)


def _save_renders(renders, out: Path) -> None:
    import imageio.v3 as iio
    import numpy as np

    from nerf_eval.atomic import atomic_files_into

    with atomic_files_into(out) as tmp:  # an interrupt leaves all of the new views or none
        for r in renders:
            rgb = r.rgb.clamp(0, 1).numpy().astype(np.float32)
            iio.imwrite(tmp / f"view_{r.index:03d}.png", (rgb * 255.0 + 0.5).astype(np.uint8))
            np.save(tmp / f"view_{r.index:03d}_rgb.npy", rgb)
            np.save(tmp / f"view_{r.index:03d}_depth.npy", r.depth.numpy().astype(np.float32))


@interruptible("evaluate")
def cmd_evaluate(args) -> int:
    import time

    from nerf_eval.atomic import atomic_write_text
    from nerf_eval.checkpoint import file_hash
    from nerf_eval.compress.saved import load_any
    from nerf_eval.evaluate import evaluate
    from nerf_eval.model import NeRF
    from nerf_eval.render import RenderSettings

    views = _parse_views(args.views)
    _check_evaluate_args(args)
    device = _device(args.device)
    pair = load_any(args.checkpoint)
    if device.type != "cpu":
        if pair.meta.get("compressor") or not isinstance(pair.coarse, NeRF):
            raise NerfEvalError(f"{args.checkpoint}: a compressed model renders on the CPU only; drop --device")
        pair.to(device)
    scene = _evaluation_scene(args)
    try:
        indices = scene.subset(args.split, views)
    except (KeyError, ValueError) as e:
        raise NerfEvalError(f"{args.scene}: {e.args[0]}") from None
    if not indices:
        raise NerfEvalError(f"{args.scene}: split {args.split!r} has no views")
    sha256 = file_hash(args.checkpoint)
    fine_network = pair.meta.get("fine_network", "fine" if pair.fine is not None else "none")
    if fine_network == "coarse" and args.n_fine > 0:
        print(f"{args.checkpoint}: no network_fine_state_dict; its {args.n_fine} fine samples per ray go through "
              "the coarse network, as nerf-pytorch does", file=sys.stderr)
    elif fine_network == "none" and args.n_fine > 0:
        print(f"{args.checkpoint}: a coarse-only model; rendering {args.n_coarse} coarse samples per ray, no fine "
              "pass", file=sys.stderr)
    settings = RenderSettings(n_coarse=args.n_coarse, n_fine=0 if fine_network == "none" else args.n_fine,
                              white_bkgd=scene.white_bkgd, chunk=args.chunk)
    start = time.perf_counter()
    result = evaluate(pair, scene, indices, settings, progress=True, with_flip=not args.no_flip)
    wall = time.perf_counter() - start
    mean = dict(result.mean, worst_view=result.views[int(result.mean["worst_view"])])
    print(f"{args.checkpoint} on {scene.name} ({args.split}, {len(indices)} views, {scene.width}x{scene.height}, "
          f"{settings.n_coarse}+{settings.n_fine} samples, {wall:.1f} s)")
    print(_metrics_table(result.views, result.per_view, mean))
    if args.save is not None:
        _save_renders(result.renders, args.save)
    if args.json is not None:
        doc = {
            "checkpoint": str(args.checkpoint), "checkpoint_sha256": sha256,
            "scene": {"spec": str(args.scene), "name": scene.name, "source": scene.source, "split": args.split,
                      "width": scene.width, "height": scene.height, "scale": args.scale, "near": scene.near,
                      "far": scene.far, "ndc": scene.ndc},
            "device": str(device),
            "settings": {"n_coarse": settings.n_coarse, "n_fine": settings.n_fine, "chunk": settings.chunk,
                         "white_bkgd": settings.white_bkgd, "lindisp": settings.lindisp, "flip": not args.no_flip,
                         "fine_network": fine_network},
            "views": result.views,
            "mean": {k: _finite_or_none(v) for k, v in mean.items()},
            "per_view": [{"view": v, **{k: _finite_or_none(x) for k, x in m.items()}}
                         for v, m in zip(result.views, result.per_view)],
            "wall_time_s": round(wall, 2),
        }
        atomic_write_text(json.dumps(doc, indent=1) + "\n", args.json)
    return 0


def _add_compress(sub) -> None:
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
    p.set_defaults(func=cmd_compress)


@interruptible("compress")
def cmd_compress(args) -> int:
    import time

    from nerf_eval.checkpoint import file_hash, load_checkpoint
    from nerf_eval.compress import get_compressor, serialized_size
    from nerf_eval.compress.saved import save_compressed
    from nerf_eval.scenes import load_scene

    _require(args, calibration_rays="count", finetune_steps="nonnegative")
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


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="render a camera path (orbit or spiral) to a GIF or PNG frames")
    p.add_argument("--checkpoint", required=True, type=Path, help="float or compressed model")
    p.add_argument("--scene", required=True, help="gives the cameras (intrinsics, bounds, path)")
    p.add_argument("--out", required=True, type=Path, help="a .gif file, or a directory for PNG frames")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--fps", type=float, default=12.0)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_render)


@interruptible("render")
def cmd_render(args) -> int:
    from dataclasses import replace

    import imageio.v3 as iio
    import numpy as np
    from tqdm.auto import tqdm

    from nerf_eval.camera_path import camera_path
    from nerf_eval.compress.saved import load_any
    from nerf_eval.evaluate import render_view
    from nerf_eval.scenes import load_scene

    _require(args, frames="count", scale="fraction", fps="positive")
    gif = args.out.suffix.lower() == ".gif"
    if gif:
        check_output_file(args.out, args.force, "GIF")
    else:
        _check_out_dir(args.out, args.force)
        check_output_dir(args.out, True, "frames directory")  # its parent, before the render
    pair = load_any(args.checkpoint)
    scene = load_scene(args.scene).rescaled(args.scale)
    path = camera_path(scene, args.frames)
    cams = replace(scene, poses=path, images=scene.images[:1].expand(len(path), -1, -1, -1), depths=None)
    frames = []
    for i in tqdm(range(len(path)), desc="render", unit="frame"):
        rgb = render_view(pair, cams, i).rgb.clamp(0, 1).numpy()
        frames.append((rgb * 255.0 + 0.5).astype(np.uint8))
    if gif:
        from nerf_eval.atomic import atomic_write_bytes

        atomic_write_bytes(iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=1000.0 / args.fps,
                                       loop=0), args.out)
    else:
        from nerf_eval.atomic import atomic_files_into

        with atomic_files_into(args.out) as tmp:  # all of the new frames or none
            for i, f in enumerate(frames):
                iio.imwrite(tmp / f"frame_{i:03d}.png", f)
    print(f"wrote {len(frames)} frames to {args.out}")
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="fp32 vs compressors side by side: results.md/json, grid.png, tradeoff.png")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--scene", required=True)
    p.add_argument("--compressors", default="*", help="comma-separated names or globs (default: all registered)")
    p.add_argument("--out", required=True, type=Path, help="report directory")
    p.add_argument("--views", default=None, help="test-split positions (default: all test views)")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--calibration-rays", type=int, default=4096)
    p.add_argument("--latency-rays", type=int, default=2048, help="fixed ray batch timed for each variant")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--finetune-steps", type=int, default=0,
                   help="also report each pruned (float) variant after this many recovery fine-tune steps")
    p.add_argument("--finetune-rays", type=int, default=1024, help="rays per fine-tune step (default 1024)")
    p.add_argument("--finetune-variants", default="*",
                   help="comma-separated names or globs of the variants fine-tuned (default: every pruned one)")
    p.add_argument("--finetune-device", default="cpu",
                   help="where the recovery fine-tunes train (cpu or cuda); every variant is measured on the CPU")
    p.add_argument("--grid-variants", default="*",
                   help="comma-separated names or globs of the variants shown in grid.png (default: all)")
    p.add_argument("--extend", type=Path, default=None, metavar="REPORT_DIR",
                   help="reuse the rows of an earlier report with the same checkpoint, scene, views and settings "
                        "and measure only the missing ones (fine-tuned rows included); --out may be REPORT_DIR")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_report)


def _grid_data(scene, results, renders, patterns: str = "*") -> dict:
    """Ground truth and renders of the fp32 worst view and a typical (median-PSNR) view, for fp32 and the
    variants whose names match one of the comma-separated globs in `patterns`."""
    from fnmatch import fnmatchcase

    base = next(r for r in results if r.name == "fp32")
    order = sorted(range(len(base.views)), key=lambda k: base.per_view[k]["psnr"])
    picks = list(dict.fromkeys([base.views[order[0]], base.views[order[len(order) // 2]]]))
    out = {"gt": {v: scene.images[v].numpy() for v in picks}, "views": picks, "renders": {},
           "gt_depth": {v: scene.depths[v].numpy() for v in picks} if scene.depths is not None else None}
    globs = [g.strip() for g in patterns.split(",") if g.strip()]
    for name, rends in renders.items():
        if name != "fp32" and not any(fnmatchcase(name, g) for g in globs):
            continue
        out["renders"][name] = {r.index: {"rgb": r.rgb.numpy(), "depth": r.depth.numpy()}
                                for r in rends if r.index in picks}
    return out


EXTEND_MUST_MATCH = ("sha256", "scene", "resolution", "views", "samples", "latency_rays", "latency_batch")


def _earlier_rows(report_dir: Path, meta: dict) -> list:
    """The rows of an earlier report whose settings match `meta` (one-line error otherwise)."""
    path = report_dir / "results.json"
    try:
        data = json.loads(path.read_text())
        settings, rows = data["settings"], data["results"]
    except FileNotFoundError:
        raise NerfEvalError(f"{path}: no such report to extend") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise NerfEvalError(f"{path}: not a nerf-eval report ({type(e).__name__}: {e})") from None
    for key in EXTEND_MUST_MATCH:
        if str(settings.get(key)) != str(meta[key]):
            raise NerfEvalError(f"{path}: was measured with {key}={settings.get(key)}, this run has {meta[key]}; "
                                f"cannot extend it")
    old, new = settings.get("finetune_recipe"), meta.get("finetune_recipe")
    if isinstance(old, dict) and new is not None:
        differs = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if differs:
            raise NerfEvalError(f"{path}: its fine-tune had {', '.join(f'{k}={old.get(k)}' for k in differs)}, "
                                f"this run's has {', '.join(f'{k}={new.get(k)}' for k in differs)}; cannot extend it")
    else:  # a report written before the structured recipe: compare the recipe's text
        old_ft, new_ft = settings.get("finetune", ""), meta.get("finetune", "")
        if old_ft and new_ft and old_ft.split(", variants")[0] != new_ft.split(", variants")[0]:
            raise NerfEvalError(f"{path}: its fine-tune was '{old_ft.split(', variants')[0]}', this run's is "
                                f"'{new_ft.split(', variants')[0]}'; cannot extend it")
    return _reused_rows(rows)


def _reused_rows(rows: list[dict]) -> list:
    """Rows of an earlier report as results; rows written before the per-row fp32 times existed get
    their report's fp32 times."""
    from nerf_eval.experiment import VariantResult

    base = next((r for r in rows if r.get("name") == "fp32"), {})
    out = []
    for row in rows:
        res = VariantResult.from_dict(row)
        if not math.isfinite(res.baseline_time_s) and base:
            res.baseline_time_s = float(base.get("render_time_s", float("nan")))
            res.baseline_latency_s = float(base.get("latency_s", float("nan")))
        out.append(res)
    return out


@interruptible("report")
def cmd_report(args) -> int:
    from nerf_eval.checkpoint import file_hash, load_checkpoint
    from nerf_eval.compress import REGISTRY
    from nerf_eval.experiment import run_variants
    from nerf_eval.measure import calibration_batch, latency_batch
    from nerf_eval.render import RenderSettings
    from nerf_eval.report import refuse_to_replace, write_report
    from nerf_eval.scenes import load_scene

    _require(args, scale="fraction", calibration_rays="count", latency_rays="count", repeats="count",
             finetune_steps="nonnegative", finetune_rays="count")
    extending_in_place = args.extend is not None and args.out.resolve() == args.extend.resolve()
    refuse_to_replace(args.out, args.force or extending_in_place)
    names = REGISTRY.select([n.strip() for n in args.compressors.split(",") if n.strip()])
    pair = load_checkpoint(args.checkpoint)
    full_scene = load_scene(args.scene)
    scene = full_scene.rescaled(args.scale)
    try:
        views = scene.subset("test", _parse_views(args.views))
    except (KeyError, ValueError) as e:
        raise NerfEvalError(f"{args.scene}: {e.args[0]}") from None
    calibration = calibration_batch(scene, args.calibration_rays)
    latency = latency_batch(scene, args.latency_rays)
    settings = RenderSettings(white_bkgd=scene.white_bkgd)
    meta = {"checkpoint": str(args.checkpoint), "sha256": file_hash(args.checkpoint)[:16], "scene": str(args.scene),
            "resolution": f"{scene.width}x{scene.height}", "views": len(views), "samples": "64+128",
            "latency_rays": len(latency), "latency_batch": "seeded test rays"}
    finetune_device = _device(args.finetune_device, "--finetune-device")
    if args.finetune_steps:
        from nerf_eval.hardware import native_bf16

        arithmetic = "bf16 autocast" if native_bf16(finetune_device) else "fp32"
        if finetune_device.type == "cuda":
            arithmetic += " on cuda"
        meta["finetune"] = (f"{args.finetune_steps} steps, {args.finetune_rays} rays, 32+64 samples, lr 1e-4 to 1e-5, "
                            f"{arithmetic}, seed 0, variants {args.finetune_variants}")
        meta["finetune_recipe"] = {"steps": args.finetune_steps, "rays": args.finetune_rays, "samples": "32+64",
                                   "lr": [1e-4, 1e-5], "arithmetic": arithmetic, "seed": 0}
    earlier = _earlier_rows(args.extend, meta) if args.extend is not None else []
    known = {r.name: r for r in earlier if r.name != "fp32"}
    results, renders = run_variants(pair, scene, names, views, calibration, settings, latency, args.repeats,
                                    finetune_steps=args.finetune_steps, finetune_scene=full_scene,
                                    finetune_rays=args.finetune_rays,
                                    finetune_only=tuple(g.strip() for g in args.finetune_variants.split(",")
                                                        if g.strip()), finetune_device=finetune_device,
                                    known=known)
    listed = {r.name for r in results}
    results += [r for r in earlier if r.name not in listed]
    if earlier:
        reused = sum(r.name in known for r in results)
        meta["extended"] = (f"{reused} rows reused from {args.extend} (each speed-up is against the fp32 "
                            f"measured in the run that measured the row)")
    grid = _grid_data(scene, results, renders, args.grid_variants)
    if earlier and len(grid["renders"]) <= 1:
        grid = None
    write_report([r.to_dict() for r in results], args.out, meta, grid,
                 overwrite=args.force or extending_in_place, title=f"fp32 vs compressors on {scene.name}",
                 keep_files=(args.extend / "grid.png",) if earlier else ())
    print((args.out / "results.md").read_text())
    return 0


def _add_autocompress(sub) -> None:
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
    p.add_argument("--ratios", default="0,0.15,0.3,0.5", help="pruning ratios tried for each network")
    p.add_argument("--precisions", default=None,
                   help="per-network precisions tried, from fp32,bf16,int8 (default: all three, without bf16 where "
                        "this CPU emulates it)")
    p.add_argument("--accelerators", default="occupancy",
                   help="accelerators appended to the fastest feasible candidates, comma-separated registry names "
                        "(default: occupancy; '' for none)")
    p.add_argument("--calibration-views", type=int, default=2)
    p.add_argument("--confirm-views", type=int, default=2)
    p.add_argument("--calibration-rays", type=int, default=4096)
    p.add_argument("--latency-rays", type=int, default=256,
                   help="rays of the batch each candidate and fp32 render alternately for the speed-up")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=cmd_autocompress)


def cmd_autocompress(args) -> int:
    from nerf_eval.autocompress import (
        PRECISIONS,
        SearchOptions,
        front_plot,
        markdown,
        search,
    )
    from nerf_eval.checkpoint import file_hash, load_checkpoint
    from nerf_eval.compress.saved import save_compressed
    from nerf_eval.measure import calibration_batch
    from nerf_eval.render import RenderSettings
    from nerf_eval.report import atomic_directory, refuse_to_replace
    from nerf_eval.scenes import load_scene

    _require(args, max_drop="nonnegative", budget_minutes="positive", scale="fraction", calibration_views="count",
             confirm_views="count", calibration_rays="count", latency_rays="count")
    out = args.out
    refuse_to_replace(out, args.force)
    try:
        ratios = tuple(float(r) for r in args.ratios.split(",") if r.strip())
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
                            ratios=ratios, precisions=precisions, calibration_views=args.calibration_views,
                            confirm_views=args.confirm_views, latency_rays=args.latency_rays,
                            accelerators=tuple(a.strip() for a in args.accelerators.split(",") if a.strip()))
    pair = load_checkpoint(args.checkpoint)
    scene = load_scene(args.scene).rescaled(args.scale)
    calibration = calibration_batch(scene, args.calibration_rays)
    result = search(pair, scene, calibration, options, RenderSettings(white_bkgd=scene.white_bkgd))
    with atomic_directory(out, args.force) as tmp:
        (tmp / "search.md").write_text(markdown(result))
        (tmp / "search.json").write_text(json.dumps(result.to_dict(), indent=1, default=float))
        front_plot(result, tmp / "front.png")
        if result.chosen is not None:
            save_compressed(tmp / "model.pt", result.pair, result.chosen.name,
                            source={"checkpoint": str(args.checkpoint), "sha256": file_hash(args.checkpoint),
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


def _add_card(sub) -> None:
    p = sub.add_parser("card", help="measure a trained run on its test views and write model_card.md/json")
    p.add_argument("run_dir", type=Path, help="directory holding checkpoint.pt")
    p.add_argument("--scene", required=True)
    p.add_argument("--command", required=True, dest="train_command", help="the training command, for the record")
    p.add_argument("--views", default=None, help="test-split positions (default: all)")
    p.add_argument("--scale", type=float, default=1.0, help="resolution scale of the test views measured, in (0, 1]")
    p.add_argument("--notes", default="", help="known limitations and how the recipe was chosen, for the card")
    p.set_defaults(func=cmd_card)


def cmd_card(args) -> int:
    from nerf_eval.card import build_card, card_markdown, write_card

    _require(args, scale="fraction")
    card = build_card(args.run_dir / "checkpoint.pt", args.scene, args.train_command, _parse_views(args.views),
                      scale=args.scale, notes=args.notes)
    write_card(card, args.run_dir)
    print(card_markdown(card))
    return 0


def _add_history(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="PSNR, worst view, size and latency per compressor across the saved "
                                       "pytest-benchmark runs of a storage: a table and a PNG trend plot")
    p.add_argument("--storage", type=Path, default=Path(".benchmarks"),
                   help="pytest-benchmark storage directory (default: .benchmarks)")
    p.add_argument("--plot", type=Path, default=Path("history.png"), help="trend plot to write (default: history.png)")
    p.set_defaults(func=cmd_history)


def cmd_history(args: argparse.Namespace) -> int:
    from nerf_eval.history import HistoryError, history_table, load_runs, plot_history

    try:
        runs = load_runs(args.storage)
    except HistoryError as e:
        raise NerfEvalError(str(e)) from None
    print(history_table(runs))
    print(f"plot: {plot_history(runs, args.plot)}")
    return 0


def _add_roofline(sub) -> None:
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
    p.set_defaults(func=cmd_roofline)


def cmd_roofline(args) -> int:
    import torch

    from nerf_eval.checkpoint import load_checkpoint
    from nerf_eval.compress import REGISTRY, get_compressor
    from nerf_eval.hardware import slow_dtype_note, slow_dtypes
    from nerf_eval.measure import calibration_batch, latency_batch
    from nerf_eval.render import RenderSettings
    from nerf_eval.report import atomic_directory, refuse_to_replace
    from nerf_eval.roofline import measure_roofline, roofline_markdown, roofline_plot
    from nerf_eval.scenes import load_scene

    _require(args, rays="count", rounds="count", calibration_rays="count", threads="count")
    if args.out is not None:
        refuse_to_replace(args.out, args.force)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = REGISTRY.select([n.strip() for n in args.compressors.split(",") if n.strip()])
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nerf-eval", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_scene, _add_train, _add_evaluate, _add_compress, _add_autocompress, _add_render, _add_report,
                _add_card, _add_history, _add_roofline):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from nerf_eval.memory import keep_freed_memory

    try:
        with sigterm_as_keyboard_interrupt():  # `kill` ends every command as cleanly as Ctrl-C
            parser = build_parser()  # imports the training code: a signal may come this early
            args = parser.parse_args(argv)
            keep_freed_memory()
            return int(args.func(args) or 0)
    except NerfEvalError as e:
        print(f"nerf-eval: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # commands that write outputs catch it themselves (`nerf_eval.atomic.interruptible`)
        print("nerf-eval: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
