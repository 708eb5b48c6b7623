"""`nerf-eval report`: fp32 vs compressors side by side (results.md/json, grid.png, tradeoff.png),
optionally extending an earlier report with the rows it lacks."""

from __future__ import annotations

import argparse
import json
from fnmatch import fnmatchcase
from pathlib import Path

from nerf_eval.cli.arguments import check_samples, parse_device, parse_views, require
from nerf_eval.errors import NerfEvalError, first_line
from nerf_eval.interrupt import interruptible
from nerf_eval.measure.record import Record
from nerf_eval.measure.spec import LATENCY_SEED, MeasurementSpec, portable


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--n-coarse", type=int, default=64, help="coarse samples per ray (default 64)")
    p.add_argument("--n-fine", type=int, default=128, help="fine samples per ray (default 128)")
    p.add_argument("--finetune-steps", type=int, default=0,
                   help="also report each pruned (float) variant after this many recovery fine-tune steps")
    p.add_argument("--finetune-rays", type=int, default=1024, help="rays per fine-tune step (default 1024)")
    p.add_argument("--finetune-variants", default="*",
                   help="comma-separated names or globs of the variants fine-tuned (default: every pruned one; "
                        "none: no variant, e.g. to extend a fine-tuned report with untuned rows)")
    p.add_argument("--finetune-device", default="cpu",
                   help="where the recovery fine-tunes train (cpu or cuda); every variant is measured on the CPU")
    p.add_argument("--finetune-arithmetic", choices=("auto", "bf16", "fp32"), default="auto",
                   help="bf16 autocast or fp32 for the fine-tunes (default auto: bf16 where the device has native "
                        "bf16 matmuls); pin it to extend a report made with the other")
    p.add_argument("--grid-variants", default="*",
                   help="comma-separated names or globs of the variants shown in grid.png beside fp32 (default: all; "
                        "none: fp32 only)")
    p.add_argument("--extend", type=Path, default=None, metavar="REPORT_DIR",
                   help="reuse the rows of an earlier report measured the same way (the same measurement spec: "
                        "checkpoint, scene, views, resolution, samples, calibration and latency batches) and measure "
                        "only the missing ones (fine-tuned rows included); --out may be REPORT_DIR")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=run)


def _grid_data(scene, results, renders, globs: tuple[str, ...] = ("*",)) -> dict:
    """Ground truth and renders of the fp32 worst view and a typical (median-PSNR) view, for fp32 and the
    variants whose names match one of `globs`."""
    base = next(r for r in results if r.name == "fp32")
    order = sorted(range(len(base.views)), key=lambda k: base.per_view[k]["psnr"])
    picks = list(dict.fromkeys([base.views[order[0]], base.views[order[len(order) // 2]]]))
    out = {"gt": {v: scene.images[v].numpy() for v in picks}, "views": picks, "renders": {},
           "gt_depth": {v: scene.depths[v].numpy() for v in picks} if scene.depths is not None else None}
    for name, rends in renders.items():
        if name != "fp32" and not any(fnmatchcase(name, g) for g in globs):
            continue
        out["renders"][name] = {r.index: {"rgb": r.rgb.numpy(), "depth": r.depth.numpy()}
                                for r in rends if r.index in picks}
    return out


def _globs(option: str, patterns: str, names: list[str]) -> tuple[str, ...]:
    """The comma-separated globs of `option` (`none`: no variant); NerfEvalError for one that matches none of
    `names`, so that a typo does not silently leave a variant out of the grid or un-tuned."""
    globs = tuple(g.strip() for g in patterns.split(",") if g.strip())
    if globs == ("none",):
        return ()
    if not globs:
        raise NerfEvalError(f"{option}: no variant names or globs given (none: no variant)")
    for g in globs:
        if not any(fnmatchcase(n, g) for n in names):
            raise NerfEvalError(f"{option}: '{g}' matches none of this report's variants ({', '.join(names)})")
    return globs


def legacy_spec_document(settings: dict) -> dict:
    """The part of a measurement spec that a report written before specs holds in its settings: the
    checkpoint's first 16 hex digits, the scene, the resolution, the view count, the samples and the
    latency batch (seeded test rays, or before those existed the first rays of one view)."""
    out: dict = {}
    if "resolution" in settings:  # an unreadable value is kept as it is, so that it differs from any spec
        try:
            width, height = (int(x) for x in str(settings["resolution"]).split("x"))
            out.update(width=width, height=height)
        except ValueError:
            out["resolution"] = settings["resolution"]
    if "samples" in settings:
        try:
            out["samples"] = [int(x) for x in str(settings["samples"]).split("+")]
        except ValueError:
            out["samples"] = settings["samples"]
    for key in ("views", "latency_rays"):
        if key in settings:
            out[key] = settings[key]
    out["latency_seed"] = LATENCY_SEED if settings.get("latency_batch") == "seeded test rays" else "first rays of one view"
    scene = settings.get("scene")
    return {"scene": portable(scene, Path.cwd()) if scene is not None else None,
            "checkpoint_sha256": settings.get("sha256"), "settings": out}


def _earlier_rows(report_dir: Path, meta: dict, spec: MeasurementSpec) -> tuple[list, str | None]:
    """The rows of an earlier report measured the same way as `spec` (`MeasurementSpec.mismatch`, the
    rule the plugin's saved-run comparison follows) with the same fine-tune recipe as this run's `meta`,
    and the earlier run's machine where it differs from this one's (None where it is the same); a
    one-line error otherwise."""
    path = report_dir / "results.json"
    try:
        data = json.loads(path.read_text())
        settings, rows = data["settings"], data["results"]
    except FileNotFoundError:
        raise NerfEvalError(f"{path}: no such report to extend") from None
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise NerfEvalError(f"{path}: not a nerf-eval report ({type(e).__name__}: {first_line(e)})") from None
    if not isinstance(settings, dict) or not isinstance(rows, list):
        raise NerfEvalError(f"{path}: not a nerf-eval report ('settings' is not an object or 'results' not a list)")
    try:
        records = _reused_rows(rows)
    except ValueError as e:
        raise NerfEvalError(f"{path}: {first_line(e)}") from None
    earlier = settings.get("spec") if isinstance(settings.get("spec"), dict) else legacy_spec_document(settings)
    reason = spec.mismatch(earlier)
    if reason is not None:
        raise NerfEvalError(f"{path}: {reason}; cannot extend it")
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
    machine = settings.get("machine", "not recorded") if settings.get("machine") != meta.get("machine") else None
    return records, machine


def _reused_rows(rows: list) -> list[Record]:
    """Rows of an earlier report as records (ValueError for a row that is not one); rows written before
    the per-row fp32 times existed get their report's fp32 times."""
    out = [Record.from_dict(row) for row in rows]
    base = next((r for r in out if r.name == "fp32"), Record("fp32"))
    for res in out:
        if res.baseline_time_s is None:
            res.baseline_time_s = base.render_time_s
            if res.reference_latency_s is None:
                res.reference_latency_s = base.latency_s
    return out


@interruptible("report")
def run(args: argparse.Namespace) -> int:
    from nerf_eval.checkpoint import file_hash, load_checkpoint
    from nerf_eval.compress import REGISTRY
    from nerf_eval.experiment import finetuned_name, run_variants
    from nerf_eval.hardware import machine_summary
    from nerf_eval.measure import calibration_batch, latency_batch
    from nerf_eval.render import RenderSettings
    from nerf_eval.report import refuse_to_replace, write_report
    from nerf_eval.scenes import load_scene

    require(args, scale="fraction", calibration_rays="count", latency_rays="count", repeats="count",
             finetune_steps="nonnegative", finetune_rays="count")
    check_samples(args)
    extending_in_place = args.extend is not None and args.out.resolve() == args.extend.resolve()
    refuse_to_replace(args.out, args.force or extending_in_place)
    names = REGISTRY.select([n.strip() for n in args.compressors.split(",") if n.strip()])
    finetune_only = _globs("--finetune-variants", args.finetune_variants, names) if args.finetune_steps else ()
    shown = names + [finetuned_name(n, args.finetune_steps) for n in names
                     if any(fnmatchcase(n, g) for g in finetune_only)]
    grid_globs = _globs("--grid-variants", args.grid_variants, ["fp32"] + shown)
    pair = load_checkpoint(args.checkpoint)
    full_scene = load_scene(args.scene)
    scene = full_scene.rescaled(args.scale)
    try:
        views = scene.subset("test", parse_views(args.views))
    except (KeyError, ValueError) as e:
        raise NerfEvalError(f"{args.scene}: {e.args[0]}") from None
    spec = MeasurementSpec(scene=portable(args.scene, Path.cwd()), checkpoint_sha256=file_hash(args.checkpoint),
                           views=tuple(views), scale=args.scale, width=scene.width, height=scene.height,
                           n_coarse=args.n_coarse, n_fine=args.n_fine, calibration_rays=args.calibration_rays,
                           latency_rays=args.latency_rays)
    calibration = calibration_batch(scene, spec.calibration_rays, spec.calibration_seed)
    latency = latency_batch(scene, spec.latency_rays, spec.latency_seed)
    settings = RenderSettings(n_coarse=spec.n_coarse, n_fine=spec.n_fine, white_bkgd=scene.white_bkgd)
    meta = {"checkpoint": str(args.checkpoint), "sha256": spec.checkpoint_sha256[:16], "scene": str(args.scene),
            "resolution": f"{scene.width}x{scene.height}", "views": len(views),
            "samples": f"{spec.n_coarse}+{spec.n_fine}", "calibration_rays": len(calibration),
            "latency_rays": len(latency), "latency_batch": "seeded test rays", "machine": machine_summary(),
            "spec": spec.to_dict()}
    finetune_device = parse_device(args.finetune_device, "--finetune-device")
    bf16 = None
    if args.finetune_steps:
        from nerf_eval.hardware import native_bf16

        bf16 = (native_bf16(finetune_device) if args.finetune_arithmetic == "auto"
                else args.finetune_arithmetic == "bf16")
        arithmetic = "bf16 autocast" if bf16 else "fp32"
        if finetune_device.type == "cuda":
            arithmetic += " on cuda"
        meta["finetune"] = (f"{args.finetune_steps} steps, {args.finetune_rays} rays, 32+64 samples, lr 1e-4 to 1e-5, "
                            f"{arithmetic}, seed 0, variants {args.finetune_variants}")
        meta["finetune_recipe"] = {"steps": args.finetune_steps, "rays": args.finetune_rays, "samples": "32+64",
                                   "lr": [1e-4, 1e-5], "arithmetic": arithmetic, "seed": 0}
    earlier, earlier_machine = _earlier_rows(args.extend, meta, spec) if args.extend is not None else ([], None)
    if earlier_machine is not None:
        meta["machine_of_reused_rows"] = earlier_machine
    known = {r.name: r for r in earlier if r.name != "fp32"}
    results, renders = run_variants(pair, scene, names, views, calibration, settings, latency, args.repeats,
                                    finetune_steps=args.finetune_steps, finetune_scene=full_scene,
                                    finetune_rays=args.finetune_rays,
                                    finetune_only=finetune_only, finetune_device=finetune_device,
                                    finetune_bf16=bf16, known=known, spec=spec)
    listed = {r.name for r in results}
    results += [r for r in earlier if r.name not in listed]
    if earlier:
        reused = sum(r.name in known for r in results)
        meta["extended"] = (f"{reused} rows reused from {args.extend} (each speed-up is against the fp32 "
                            f"measured in the run that measured the row)")
    grid = _grid_data(scene, results, renders, grid_globs)
    if earlier and len(grid["renders"]) <= 1:
        grid = None
    write_report([r.to_dict() for r in results], args.out, meta, grid,
                 overwrite=args.force or extending_in_place, title=f"fp32 vs compressors on {scene.name}",
                 keep_files=(args.extend / "grid.png",) if earlier else ())
    print((args.out / "results.md").read_text())
    return 0
