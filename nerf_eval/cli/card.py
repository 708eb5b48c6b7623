"""`nerf-eval card`: measure a trained run on its test views and write model_card.md/json."""

from __future__ import annotations

import argparse
from pathlib import Path

from nerf_eval.cli.arguments import parse_views, require


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("card", help="measure a trained run on its test views and write model_card.md/json")
    p.add_argument("run_dir", type=Path, help="directory holding checkpoint.pt")
    p.add_argument("--scene", required=True)
    p.add_argument("--command", required=True, dest="train_command", help="the training command, for the record")
    p.add_argument("--views", default=None, help="test-split positions (default: all)")
    p.add_argument("--scale", type=float, default=1.0, help="resolution scale of the test views measured, in (0, 1]")
    p.add_argument("--notes", default="", help="known limitations and how the recipe was chosen, for the card")
    p.add_argument("--force", action="store_true", help="replace the run's existing model card")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nerf_eval.atomic import check_output_file
    from nerf_eval.card import CARD_FILES, build_card, card_markdown, write_card

    require(args, scale="fraction")
    for name in CARD_FILES:  # before measuring: the card is the last thing written
        check_output_file(args.run_dir / name, args.force, "model card")
    card = build_card(args.run_dir / "checkpoint.pt", args.scene, args.train_command, parse_views(args.views),
                      scale=args.scale, notes=args.notes)
    write_card(card, args.run_dir)
    print(card_markdown(card))
    return 0
