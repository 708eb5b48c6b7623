"""`nerf-eval render`: render a camera path (orbit or spiral) to a GIF or PNG frames."""

from __future__ import annotations

import argparse
from pathlib import Path

from nerf_eval.atomic import check_output_dir, check_output_file
from nerf_eval.cli.arguments import check_out_dir, require
from nerf_eval.errors import NerfEvalError
from nerf_eval.interrupt import interruptible

GIF_FPS = (0.01, 100.0)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a camera path (orbit or spiral) to a GIF or PNG frames")
    p.add_argument("--checkpoint", required=True, type=Path, help="float or compressed model")
    p.add_argument("--scene", required=True, help="gives the cameras (intrinsics, bounds, path)")
    p.add_argument("--out", required=True, type=Path, help="a .gif file, or a directory for PNG frames")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--fps", type=float, default=12.0)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=run)


@interruptible("render")
def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import imageio.v3 as iio
    import numpy as np
    from tqdm.auto import tqdm

    from nerf_eval.camera_path import camera_path
    from nerf_eval.compress.saved import load_any
    from nerf_eval.evaluate import render_view
    from nerf_eval.scenes import load_scene

    require(args, frames="count", scale="fraction", fps="positive")
    gif = args.out.suffix.lower() == ".gif"
    if gif and not GIF_FPS[0] <= args.fps <= GIF_FPS[1]:  # a GIF stores each frame's delay in 1/100 s, 16 bits
        raise NerfEvalError(f"--fps {args.fps:g}: a GIF plays {GIF_FPS[0]:g} to {GIF_FPS[1]:g} frames per second")
    if gif:
        check_output_file(args.out, args.force, "GIF")
    else:
        check_out_dir(args.out, args.force)
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
