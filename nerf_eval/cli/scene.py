"""`nerf-eval scene`: write a built-in procedural scene in the Blender layout (with depth)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nerf_eval.cli.arguments import check_out_dir
from nerf_eval.errors import NerfEvalError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scene", help="write a built-in procedural scene in the Blender layout (with depth)")
    p.add_argument("name", help="built-in scene name (object, forward)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="write into a non-empty directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nerf_eval.scenes.blender import write_blender
    from nerf_eval.scenes.procedural import BUILTIN_SCENES, make_scene

    if args.name not in BUILTIN_SCENES:
        raise NerfEvalError(f"{args.name}: unknown built-in scene; choose from {', '.join(sorted(BUILTIN_SCENES))}")
    check_out_dir(args.out_dir, args.force)
    scene, _ = make_scene(args.name, seed=args.seed)
    write_blender(scene, args.out_dir)
    print(f"wrote {args.name} ({len(scene.poses)} views, {scene.width}x{scene.height}) to {args.out_dir}")
    return 0
