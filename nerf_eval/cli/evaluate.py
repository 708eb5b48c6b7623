"""`nerf-eval evaluate`: render views of a scene with a checkpoint and measure them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nerf_eval.atomic import check_output_dir, check_output_file
from nerf_eval.cli.arguments import SCENE_HELP, check_out_dir, check_samples, parse_device, parse_views, require
from nerf_eval.errors import NerfEvalError
from nerf_eval.interrupt import interruptible


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run)


def _check_evaluate_args(args) -> None:
    require(args, scale="fraction", chunk="count")
    check_samples(args)
    if args.json is not None:
        check_output_file(args.json, args.force, "--json file")
    if args.save is not None:
        check_out_dir(args.save, args.force)
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
    # the scene's own check: 0 <= near < far, both finite and within float32's range
    return replace(scene, near=float(near), far=float(far)).check(where=f"--near {near:g} --far {far:g}")


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
def run(args: argparse.Namespace) -> int:
    import time

    from nerf_eval.atomic import atomic_write_text
    from nerf_eval.checkpoint import file_hash
    from nerf_eval.compress.saved import load_any
    from nerf_eval.evaluate import evaluate
    from nerf_eval.model import NeRF
    from nerf_eval.render import RenderSettings

    views = parse_views(args.views)
    _check_evaluate_args(args)
    device = parse_device(args.device)
    pair = load_any(args.checkpoint)
    if device.type != "cpu":
        if pair.meta.get("compressor") or not isinstance(pair.coarse, NeRF):
            raise NerfEvalError(f"{args.checkpoint}: a compressed model renders on the CPU only; drop --device")
        pair.to(device)
    scene = _evaluation_scene(args)
    try:
        indices = scene.subset(args.split, views)
    except NerfEvalError as e:
        raise NerfEvalError(f"{args.scene}: {e}") from None
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
