"""Everything measured on one target, built once and cached: the scene, the fp32 pair, calibration and
latency rays, each compressed model, and each model's evaluation record.

A thin layer over nerf_eval: loading, compressing, rendering and metrics are the library's; this module
adds validation of what compressors return, caching and timing, and checks that the checkpoint belongs
to the scene (see provenance.py). What it measures on is one `MeasurementSpec` (`spec`), whose
fingerprint keys the evaluation cache and goes into every record. All failures are NerfEvalError
subclasses with one-line messages naming the scene, checkpoint or compressor. The pytest plugin's
fixtures are built on it; nothing here knows pytest.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from nerf_eval.checkpoint import file_hash, load_checkpoint
from nerf_eval.compress import Compressor
from nerf_eval.errors import CheckpointError, CompressorError, NerfEvalError, SceneError, first_line
from nerf_eval.evaluate import evaluate
from nerf_eval.measure.batches import calibration_batch, latency_batch
from nerf_eval.measure.cache import EvalCache, digest, model_fingerprint, tensors_fingerprint, write_npz
from nerf_eval.measure.latency import PairedProtocol, PairedTiming
from nerf_eval.measure.provenance import check_card, check_scene
from nerf_eval.measure.quality import add_depth_change, record_from_metrics
from nerf_eval.measure.record import Record
from nerf_eval.measure.render_latency import render_batch, time_render_pair
from nerf_eval.measure.spec import MeasurementSpec, parse_views, portable
from nerf_eval.model import ModelPair
from nerf_eval.render import Rays, RenderSettings
from nerf_eval.scenes import Scene, load_scene, parse_scene_spec

REFERENCE = "fp32 (reference)"
PROBE_ROWS = 4


class CheckpointMissing(CheckpointError):
    """An `optional` target's checkpoint does not exist yet (the tests that need it are skipped)."""


class MeasuredTarget(Protocol):
    """What a Workbench measures (the plugin's `Target` is one): a scene spec and a checkpoint of it,
    a name for records, whether a missing checkpoint only skips (`optional`), and a scale that replaces
    the options' one where it is not None."""

    @property
    def name(self) -> str: ...
    @property
    def scene(self) -> str: ...
    @property
    def checkpoint(self) -> str | Path: ...
    @property
    def optional(self) -> bool: ...
    @property
    def scale(self) -> float | None: ...


class MeasureOptions(Protocol):
    """How a Workbench measures (the plugin's `NerfOptions` is one): views ('all', a count or positions
    'i,j', see `parse_views`), scale, sample counts, ray batch sizes, timing rounds and threads (0: as
    torch is set), the render device, whether a checkpoint may be measured on a scene other than its own,
    and where renders are written (None: nowhere)."""

    @property
    def views(self) -> str: ...
    @property
    def scale(self) -> float: ...
    @property
    def n_coarse(self) -> int: ...
    @property
    def n_fine(self) -> int: ...
    @property
    def calibration_rays(self) -> int: ...
    @property
    def latency_rays(self) -> int: ...
    @property
    def latency_rounds(self) -> int: ...
    @property
    def latency_threads(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def cross_scene(self) -> bool: ...
    @property
    def report_dir(self) -> Path | None: ...


@dataclass
class CompressedModel:
    """A compressor's output on the target's fp32 pair, with its name and default gates."""

    name: str
    pair: ModelPair
    compressor: Compressor = field(repr=False)
    gates: dict[str, float] = field(default_factory=dict)
    compress_seconds: float = 0.0


def check_compressed(name: str, out: object) -> ModelPair:
    """Refuse what the renderer cannot use: not a ModelPair, or a network that does not map
    (N, C) fp32 encoded inputs to (N, 4) fp32 raw outputs."""
    if not isinstance(out, ModelPair):
        raise CompressorError(f"{name}: compress returned {type(out).__name__}, expected a ModelPair")
    width = out.config.input_ch + out.config.input_ch_views
    probe = torch.zeros(PROBE_ROWS, width)
    for role, net in out.networks().items():
        try:
            with torch.inference_mode():
                raw = net(probe)
        except Exception as e:  # any failure of user code on a well-formed input
            raise CompressorError(f"{name}: the compressed {role} network fails on a ({PROBE_ROWS}, {width}) "
                                  f"input: {type(e).__name__}: {first_line(e)[:300]}") from None
        if not isinstance(raw, torch.Tensor):
            raise CompressorError(f"{name}: the compressed {role} network returns {type(raw).__name__}, "
                                  "expected a tensor")
        if tuple(raw.shape) != (PROBE_ROWS, 4):
            raise CompressorError(f"{name}: the compressed {role} network returns shape {tuple(raw.shape)} "
                                  f"for {PROBE_ROWS} inputs, expected ({PROBE_ROWS}, 4)")
        if raw.dtype != torch.float32:
            raise CompressorError(f"{name}: the compressed {role} network returns {raw.dtype}, expected "
                                  "torch.float32 (cast the output back)")
    return out


def safe_filename(name: str) -> str:
    """`name` with every run of characters a file name should not hold replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class Workbench:
    """One target's data and models; `timing_note` is None when latency may be measured, else why not."""

    def __init__(self, target: MeasuredTarget, options: MeasureOptions, cache: EvalCache,
                 timing_note: str | None = None, root: Path | None = None,
                 missing_checkpoint: Callable[[Path, str], str] | None = None) -> None:
        self.target = target
        self.options = options
        self.root = root  # records name files relative to it (saved runs carry no machine paths)
        self.cache = cache
        self.missing_checkpoint = missing_checkpoint or (lambda path, scene: f"{path}: checkpoint not found")
        self.timing_note = timing_note
        self._compressed: dict[int, tuple[Compressor, CompressedModel | CompressorError]] = {}
        self._latency: dict[str, float] = {}
        self._on_device: dict[int, tuple[ModelPair, ModelPair]] = {}
        self._paired: dict[int, tuple[ModelPair, PairedTiming]] = {}
        self.declared_gates: dict[str, dict[str, float]] = {}

    @cached_property
    def scene(self) -> Scene:
        """The target's scene at the evaluation scale."""
        spec = self.target.scene
        try:
            scene = load_scene(spec)
        except NerfEvalError:
            raise
        except Exception as e:  # loaders may hit anything on a broken file; keep it to one line
            raise SceneError(f"{spec}: cannot load scene ({type(e).__name__}: {first_line(e)[:300]})") from None
        try:
            return scene.rescaled(self.target.scale if self.target.scale is not None else self.options.scale)
        except ValueError as e:
            raise SceneError(f"{spec}: {e}") from None

    @cached_property
    def views(self) -> list[int]:
        """Scene indices of the evaluated test views."""
        scene = self.scene
        if not scene.splits.get("test"):
            raise SceneError(f"{self.target.scene}: the scene has no 'test' split to evaluate on")
        try:
            return scene.subset("test", parse_views(self.options.views, len(scene.splits["test"])))
        except ValueError as e:
            raise SceneError(f"{self.target.scene}: {e}") from None

    @cached_property
    def checkpoint_sha256(self) -> str:
        self.pair  # noqa: B018  (raises the checkpoint's error first)
        return file_hash(self.target.checkpoint)

    @cached_property
    def pair(self) -> ModelPair:
        """The fp32 model pair of the target's checkpoint, once it is known to belong to the scene: the
        scene it records having been trained on is the scene under test (unless --nerf-cross-scene),
        and a model card next to it describes this file."""
        path = Path(self.target.checkpoint)
        parse_scene_spec(self.target.scene)  # a misspelt scene is reported as such, before its checkpoint
        if not path.exists():
            message = self.missing_checkpoint(path, self.target.scene)
            raise (CheckpointMissing if self.target.optional else CheckpointError)(message)
        pair = load_checkpoint(path).eval()
        check_card(path)
        if not self.options.cross_scene:
            check_scene(path, pair.meta.get("scene"), self.target.scene, self.scene.source)
        return pair

    def on_device(self, pair: ModelPair) -> ModelPair:
        """`pair` where models render (--nerf-device): itself on the CPU, else a copy moved there once.

        Compressors always run on the CPU pair; only rendering moves. A model whose modules cannot move
        (torch's quantized int8 kernels are CPU-only) raises CompressorError naming the device."""
        if self.options.device == "cpu":
            return pair
        key = id(pair)
        if key not in self._on_device:
            quantized = sorted({type(m).__name__ for net in pair.networks().values() for m in net.modules()
                                if ".quantized" in type(m).__module__})
            if quantized:  # torch moves their packed weights without complaint, then fails inside the render
                raise CompressorError(f"cannot run on {self.options.device}: torch's quantized modules "
                                      f"({', '.join(quantized[:3])}) have CPU kernels only")
            try:
                moved = copy.deepcopy(pair).to(self.options.device)
            except (RuntimeError, NotImplementedError) as e:
                raise CompressorError(f"cannot run on {self.options.device}: {first_line(e)[:200]}") from None
            self._on_device[key] = (pair, moved)  # the entry keeps `pair` alive, so its id stays unique
        return self._on_device[key][1]

    @cached_property
    def settings(self) -> RenderSettings:
        return RenderSettings(n_coarse=self.options.n_coarse, n_fine=self.options.n_fine,
                              white_bkgd=self.scene.white_bkgd)

    @cached_property
    def calibration_rays(self) -> Rays:
        """Rays from training views, handed to compressors (seeded: the same every session)."""
        return calibration_batch(self.scene, self.options.calibration_rays)  # the spec's default seed

    @cached_property
    def latency_rays(self) -> Rays:
        """The fixed ray batch every latency is measured on (seeded, from test views)."""
        return latency_batch(self.scene, self.options.latency_rays)

    @cached_property
    def scene_fingerprint(self) -> str:
        s = self.scene
        return tensors_fingerprint(s.images, s.poses, s.depths, torch.tensor([s.focal, s.near, s.far]))

    @cached_property
    def spec(self) -> MeasurementSpec:
        """What every record of this target is measured on (its fingerprint keys the cache and tells
        comparable saved runs from others)."""
        scene = self.scene
        return MeasurementSpec(
            scene=portable(self.target.scene, self.root), checkpoint_sha256=self.checkpoint_sha256,
            views=tuple(self.views), scale=self.target.scale if self.target.scale is not None else self.options.scale,
            width=scene.width, height=scene.height, n_coarse=self.settings.n_coarse, n_fine=self.settings.n_fine,
            calibration_rays=self.options.calibration_rays, latency_rays=self.options.latency_rays,
            device=self.options.device)

    def compressed(self, name: str, compressor: Compressor) -> CompressedModel:
        """The compressor's output on the fp32 pair, built and checked once per session (failures too)."""
        key = id(compressor)
        if key not in self._compressed:  # the entry keeps `compressor` alive, so its id stays unique
            try:
                result: CompressedModel | CompressorError = self._compress(name, compressor)
            except CompressorError as e:
                result = e
            self._compressed[key] = (compressor, result)
        result = self._compressed[key][1]
        if isinstance(result, CompressorError):
            raise result
        return result

    def _compress(self, name: str, compressor: Compressor) -> CompressedModel:
        pair, calibration = self.pair, self.calibration_rays
        before = model_fingerprint(pair)
        start = time.perf_counter()
        try:
            out = compressor.compress(pair, calibration)
        except NerfEvalError as e:
            raise CompressorError(str(e) if str(e).startswith(name) else f"{name}: {e}") from None
        except Exception as e:  # user code: report it in one line naming the compressor
            raise CompressorError(f"{name}: compress raised {type(e).__name__}: {first_line(e)[:300]}") from None
        seconds = time.perf_counter() - start
        if model_fingerprint(pair) != before:
            del self.pair  # reload the untouched weights for the other compressors
            raise CompressorError(f"{name}: compress modified the fp32 model in place; return a copy")
        check_compressed(name, out)
        gates = dict(getattr(compressor, "gates", None) or {})
        self.declared_gates[name] = gates
        return CompressedModel(name, out.eval(), compressor, gates, seconds)

    def record(self, name: str, pair: ModelPair) -> Record:
        """Quality on the evaluated views, depth change against fp32 and size of `pair` (rendered once,
        then cached), with the spec it was measured on."""
        spec = self.spec
        metrics, arrays = self._evaluation(name, pair)
        if self.options.report_dir is not None:
            self._write_renders(name, arrays)
        rec = record_from_metrics(
            name, pair, metrics["mean"], metrics["per_view"], self.views, target=self.target.name,
            scene=spec.scene, checkpoint=portable(self.target.checkpoint, self.root),
            checkpoint_sha256=spec.checkpoint_sha256, settings=spec.settings(), spec_sha256=spec.fingerprint)
        reference = arrays if pair is self.pair else self._evaluation(REFERENCE, self.pair)[1]
        return add_depth_change(rec, [torch.from_numpy(d) for d in arrays["depth"]],
                                [torch.from_numpy(d) for d in reference["depth"]])

    def _evaluation(self, name: str, pair: ModelPair) -> tuple[dict, dict[str, np.ndarray]]:
        """Metrics (means and per view) and renders (rgb, depth, acc) of `pair` on the evaluated views,
        from the cache or rendered now."""
        key = digest({"spec": self.spec.fingerprint, "scene": self.scene_fingerprint, "model": model_fingerprint(pair)})
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        try:
            ev = evaluate(self.on_device(pair), self.scene, self.views, self.settings, progress=False)
        except NerfEvalError:
            raise
        except Exception as e:  # a compressed network that breaks inside the renderer
            raise CompressorError(f"{name}: rendering failed: {type(e).__name__}: {first_line(e)[:300]}") from None
        arrays = {"rgb": np.stack([r.rgb.numpy() for r in ev.renders]),
                  "depth": np.stack([r.depth.numpy() for r in ev.renders]),
                  "acc": np.stack([r.acc.numpy() for r in ev.renders])}
        metrics = {"mean": dict(ev.mean), "per_view": ev.per_view}
        self.cache.put(key, metrics, arrays)
        return metrics, arrays

    def _write_renders(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        out = Path(self.options.report_dir) / "renders" / safe_filename(self.target.name)
        write_npz(out / f"{safe_filename(name)}.npz", {**arrays, "views": np.array(self.views)})
        gt = out / "ground_truth.npz"
        if not gt.exists():
            depth = self.scene.depths[self.views].numpy() if self.scene.depths is not None else np.zeros(0)
            write_npz(gt, {"rgb": self.scene.images[self.views].numpy(), "depth": depth,
                           "views": np.array(self.views)})

    @cached_property
    def baseline(self) -> Record:
        """The fp32 pair's record: what relative gates compare against."""
        return self.record(REFERENCE, self.pair)

    def render_latency_batch(self, pair: ModelPair) -> Callable[[], dict]:
        """A no-argument function rendering the fixed latency batch (what `benchmark` should time)."""
        return render_batch(self.on_device(pair), self.latency_rays, self.settings, self.options.latency_threads)

    def paired_timing(self, pair: ModelPair) -> PairedTiming | None:
        """`pair` and the fp32 pair rendering the latency batch interleaved (`nerf_eval.measure`'s paired
        protocol, --nerf-latency-rounds rounds after a warm-up), once per model and session; None where
        timing is meaningless (see `timing_note`). A speed-up is a ratio taken side by side, so a change
        of load between two tests no longer reads as one."""
        if self.timing_note is not None:
            return None
        key = id(pair)
        if key not in self._paired:
            timing = time_render_pair(self.on_device(self.pair), self.on_device(pair), self.latency_rays,
                                      self.settings, PairedProtocol(rounds=self.options.latency_rounds, warmup=1),
                                      threads=self.options.latency_threads)
            self._paired[key] = (pair, timing)  # the entry keeps `pair` alive, so its id stays unique
        return self._paired[key][1]

    def latency(self, pair: ModelPair, rounds: int | None = None) -> float | None:
        """Minimum seconds over `rounds` timed renders of the latency batch (after one warm-up), or
        None where timing is meaningless (see `timing_note`). Only for a model timed on its own (fp32's
        reference latency when no paired timing exists); records use `paired_timing`."""
        if self.timing_note is not None:
            return None
        run = self.render_latency_batch(pair)
        run()
        times = []
        for _ in range(rounds or self.options.latency_rounds):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    def baseline_latency(self) -> float | None:
        """Latency of the fp32 pair, measured once per session."""
        if REFERENCE not in self._latency:
            value = self.latency(self.pair)
            if value is None:
                return None
            self._latency[REFERENCE] = value
        return self._latency[REFERENCE]
