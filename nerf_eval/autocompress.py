"""Automatic compression to a quality budget: search compositions, keep the Pareto front, confirm, pick.

The search space is what the registry offers, composed from what compressors declare (their search role
and the search values of their parameters: the pruning ratios, the `mixed` budgets, the accelerators): a
pruning ratio per network (the OBS rule with least-squares repair, `prune-activation-obs:R:coarse=Rc`),
then a precision per network (fp32, bf16 or static int8: `int8-ptq-fine+bf16:coarse`, ...; int8 with int8-weight
density/colour heads or, with `int8_heads="fp32"`, fp32 ones) or per layer (`mixed:F`, the activation-aware
search), then an accelerator (`...+occupancy`).
Every candidate therefore has a registry name that rebuilds it exactly.

1. Quality is the PSNR on *calibration views* (the scene's val split, never the test views), against
   the ground truth, minus the fp32 pair's PSNR on the same views. Speed is the speed-up over fp32 on one
   fixed ray batch at the full sample counts, candidate and fp32 timed interleaved by nerf_eval.measure's
   paired protocol (the median of the per-round ratios, robust to other load on the machine; their
   interquartile range is kept as `speedup_spread`). Size is serialized bytes.
2. First every per-network precision of the fp32 pair: both networks are quantized once per base pair
   (int8 calibration does not depend on the other network's precision) and the combinations are
   assembled from them. Then pruning: statistics and unit scores are computed once, each ratio pair is
   a slice of them. Then every precision on the fastest pruned points within the budget, then
   `mixed` on fp32 and the best pruned point, and last every accelerator (`samples`: fewer samples
   per ray; `occupancy`: skip empty space, stop rays early; `coarse-grid`: the coarse pass read from a
   table), then all of them composed at every sample budget `samples` declares (30% of the budget is
   kept for this last stage: `accelerate_share`), appended to the
   fastest feasible candidates so far, as time allows.
3. Candidates within the drop budget are ranked by the objective (latency or size); the best is rebuilt
   from its name and confirmed on held-out test views against fp32 on the same views. A candidate that
   fails confirmation is reported and the next one is tried.

The search stops when its time budget runs out (time is kept back for the confirmation); what it has
measured so far is what it chooses from.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from tqdm.auto import tqdm

from nerf_eval.compress import REGISTRY, CompressorSpec, get_compressor
from nerf_eval.compress.cast import DTYPES, cast_network
from nerf_eval.compress.params import SEPARATOR
from nerf_eval.compress.prune import prune_params
from nerf_eval.compress.quantize import static_int8_pair
from nerf_eval.compress.quantize.heads import DEFAULT_HEADS, HEAD_PRECISIONS
from nerf_eval.errors import NerfEvalError
from nerf_eval.evaluate import evaluate
from nerf_eval.measure.batches import latency_batch
from nerf_eval.measure.latency import PairedProtocol, PairedTiming
from nerf_eval.measure.quality import measure_quality
from nerf_eval.measure.record import Record
from nerf_eval.measure.render_latency import time_render_pair
from nerf_eval.measure.spec import MeasurementSpec
from nerf_eval.model import ModelPair
from nerf_eval.render import Rays, RenderSettings
from nerf_eval.scenes.scene import Scene

OBJECTIVES = ("speed", "size")
PRECISIONS = ("fp32", "bf16", "int8")
NETWORKS = ("coarse", "fine")


@dataclass(frozen=True)
class SearchOptions:
    """What to search and how much to spend on it."""

    max_drop: float = 0.3
    objective: str = "speed"
    budget_s: float = 20 * 60
    ratios: tuple[float, ...] | None = None  # None: the pruning rule's declared search axis (0, 0.15, 0.3, 0.5)
    prune_rule: str = "prune-activation-obs"
    precisions: tuple[str, ...] = PRECISIONS
    int8_heads: str = DEFAULT_HEADS  # the heads of the per-network int8 candidates (`int8-ptq-*:heads=`)
    mixed_budgets: tuple[float, ...] | None = None  # None: the `mixed` budget's declared search axis (40)
    stage2_points: int = 4
    accelerators: tuple[str, ...] | None = None  # None: the accelerator-role compressors at their search points
    accelerate_points: int = 2
    accelerate_share: float = 0.3  # of the budget kept for the accelerate stage (when there are accelerators)
    confirm_tries: int = 3
    calibration_views: int = 2
    confirm_views: int = 2
    latency_rays: int = 256
    repeats: int = 3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_drop) and self.max_drop >= 0):
            raise NerfEvalError(f"autocompress: --max-drop must be a non-negative number of dB, got {self.max_drop}")
        if self.objective not in OBJECTIVES:
            raise NerfEvalError(f"autocompress: unknown objective {self.objective!r}; choose one of {OBJECTIVES}")
        if not self.budget_s > 0:
            raise NerfEvalError(f"autocompress: the time budget must be positive, got {self.budget_s} s")
        if not 0.0 <= self.accelerate_share < 1.0:
            raise NerfEvalError(f"autocompress: the accelerate stage's share of the budget must be in [0, 1), "
                                f"got {self.accelerate_share}")
        rules = REGISTRY.search("prune")
        if self.prune_rule not in rules:
            raise NerfEvalError(f"autocompress: {self.prune_rule!r} is not a pruning compressor; "
                                f"choose from {', '.join(rules)}")
        ratio = REGISTRY.spec(self.prune_rule).param("ratio")
        if self.ratios is None:
            object.__setattr__(self, "ratios", tuple(ratio.search))
        object.__setattr__(self, "ratios", tuple(ratio.check(r, "autocompress") for r in self.ratios))
        if self.mixed_budgets is None:
            object.__setattr__(self, "mixed_budgets", tuple(v for base in REGISTRY.search("mixed")
                                                            for v in REGISTRY.spec(base).param("budget").search))
        if self.accelerators is None:
            object.__setattr__(self, "accelerators", tuple(name for base in REGISTRY.search("accelerator")
                                                           for name in REGISTRY.search_points(base)))
        if self.int8_heads not in HEAD_PRECISIONS:
            raise NerfEvalError(f"autocompress: unknown int8 heads {self.int8_heads!r}; choose from "
                                f"{', '.join(HEAD_PRECISIONS)}")
        unknown = set(self.precisions) - set(PRECISIONS)
        if unknown:
            raise NerfEvalError(f"autocompress: unknown precisions {sorted(unknown)}; choose from {PRECISIONS}")
        for name in self.accelerators:
            get_compressor(name)  # an unknown or malformed name is a one-line CompressorError now, not later
        if min(self.calibration_views, self.confirm_views, self.latency_rays, self.repeats) < 1:
            raise NerfEvalError("autocompress: views, latency rays and repeats must be positive")


@dataclass
class Candidate:
    """One measured point of the search: its `record` (`nerf_eval.measure.Record`, the record report rows
    and the plugin's records are) and what the search adds to it; `name` rebuilds it through the registry.

    record.latency_s: median time of the latency batch; record.speedup: median of the per-round
    fp32/candidate ratios (fp32 and the candidate timed interleaved), record.speedup_spread: their
    interquartile range. The fp32 reference has speed-up 1 by definition; its spread is that of fp32
    timed against itself (the noise floor of the run). The figures are read through properties (NaN, or
    size 0, where the candidate was not measured) so ranking needs no None checks."""

    name: str
    stage: str
    ratios: dict[str, float]
    precision: dict[str, str] | str
    record: Record | None = None
    drop: float = math.nan
    size_ratio: float = math.nan
    pareto: bool = False
    feasible: bool = False
    confirmed_drop: float | None = None

    def __post_init__(self) -> None:
        if self.record is None:
            self.record = Record(self.name)

    @property
    def psnr(self) -> float:
        return _number(self.record.psnr)

    @property
    def latency_s(self) -> float:
        return _number(self.record.latency_s)

    @property
    def speedup(self) -> float:
        return _number(self.record.speedup)

    @property
    def speedup_spread(self) -> float:
        return _number(self.record.speedup_spread)

    @property
    def size_bytes(self) -> int:
        return self.record.size_bytes or 0

    @property
    def error(self) -> str | None:
        return self.record.error

    def to_dict(self) -> dict:
        """The record's fields with the search's beside them (search.json)."""
        return {**self.record.to_dict(), "name": self.name, "stage": self.stage, "ratios": self.ratios,
                "precision": self.precision, "drop": self.drop, "size_ratio": self.size_ratio, "pareto": self.pareto,
                "feasible": self.feasible, "confirmed_drop": self.confirmed_drop}


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass
class SearchResult:
    """Every candidate, the fp32 reference, the chosen one (None if none confirmed) and its pair."""

    candidates: list[Candidate]
    reference: Candidate
    chosen: Candidate | None
    pair: ModelPair | None
    options: SearchOptions
    elapsed_s: float
    stopped_early: bool
    calibration_views: list[int] = field(default_factory=list)
    confirm_views: list[int] = field(default_factory=list)
    fp32_confirm_psnr: float = math.nan
    spec: MeasurementSpec | None = None

    def to_dict(self) -> dict:
        return {"options": asdict(self.options), "spec": self.spec.to_dict() if self.spec else None,
                "elapsed_s": self.elapsed_s, "stopped_early": self.stopped_early,
                "calibration_views": self.calibration_views, "confirm_views": self.confirm_views,
                "fp32_confirm_psnr": self.fp32_confirm_psnr, "reference": self.reference.to_dict(),
                "chosen": self.chosen.to_dict() if self.chosen else None,
                "candidates": [c.to_dict() for c in self.candidates]}


def _prune_spec(rule: str) -> CompressorSpec:
    """The bare spec of pruning rule `rule` (one not registered is named with the built-in pruning parameters)."""
    return REGISTRY.spec(rule) if rule in REGISTRY.search("prune") else CompressorSpec(rule, (), prune_params(rule))


def prune_name(rule: str, ratios: dict[str, float]) -> str | None:
    """Registry name of a per-network pruning (None when nothing is pruned): the fine network's ratio as the
    rule's ratio, the coarse one as its `coarse` parameter where they differ."""
    rc, rf = ratios.get("coarse", 0.0), ratios.get("fine", 0.0)
    if rc == 0.0 and rf == 0.0:
        return None
    return str(_prune_spec(rule).replace(ratio=rf, coarse=None if rc == rf else rc))


def precision_name(precision: dict[str, str], int8_heads: str = DEFAULT_HEADS) -> list[str]:
    """Registry stages of a per-network precision: int8 first (it needs float inputs, its heads as
    `int8_heads` says), then the casts."""
    stages = []
    for kind in ("int8", "bf16"):
        nets = [n for n in NETWORKS if precision.get(n) == kind]
        if nets:
            which = "both" if len(nets) == 2 else nets[0]
            if kind == "int8":
                heads = None if int8_heads == DEFAULT_HEADS else int8_heads
                stages.append(str(REGISTRY.spec(f"int8-ptq-{which}", heads=heads)))
            else:
                stages.append(str(REGISTRY.spec("bf16", network=None if which == "both" else which)))
    return stages


def candidate_name(rule: str, ratios: dict[str, float], precision: dict[str, str] | str,
                   int8_heads: str = DEFAULT_HEADS) -> str:
    parts = [p for p in [prune_name(rule, ratios)] if p]
    parts += [precision] if isinstance(precision, str) else precision_name(precision, int8_heads)
    return SEPARATOR.join(parts) or "fp32"


def pareto_front(cands: list[Candidate]) -> list[Candidate]:
    """Candidates no other candidate beats in PSNR, speed-up and size at once."""
    ok = [c for c in cands if c.error is None]

    def dominates(a: Candidate, b: Candidate) -> bool:
        no_worse = a.psnr >= b.psnr and a.speedup >= b.speedup and a.size_bytes <= b.size_bytes
        better = a.psnr > b.psnr or a.speedup > b.speedup or a.size_bytes < b.size_bytes
        return no_worse and better

    return [c for c in ok if not any(dominates(o, c) for o in ok if o is not c)]


def rank(cands: list[Candidate], objective: str) -> list[Candidate]:
    """Feasible candidates, best first: by speed-up (then size) or by size (then speed-up)."""
    key = ((lambda c: (-c.speedup, c.size_bytes, -c.psnr)) if objective == "speed"
           else (lambda c: (c.size_bytes, -c.speedup, -c.psnr)))
    return sorted((c for c in cands if c.feasible and c.error is None), key=key)


class _Search:
    """Measures candidates against fp32 on fixed views and rays, within a time budget."""

    def __init__(self, pair: ModelPair, scene: Scene, calibration: Rays, options: SearchOptions,
                 settings: RenderSettings, progress: bool, source: SpecSource) -> None:
        self.pair, self.scene, self.calibration, self.options, self.settings = pair, scene, calibration, options, settings
        self.t0 = time.perf_counter()
        self.views = _pick(scene, "val", options.calibration_views)
        self.spec = MeasurementSpec(scene=source.scene, checkpoint_sha256=source.checkpoint_sha256,
                                    views=tuple(self.views), scale=source.scale, width=scene.width,
                                    height=scene.height, n_coarse=settings.n_coarse, n_fine=settings.n_fine,
                                    calibration_rays=len(calibration), latency_rays=options.latency_rays)
        self.latency_rays = latency_batch(scene, self.spec.latency_rays, self.spec.latency_seed)
        self.candidates: list[Candidate] = []
        self.bar = tqdm(desc="autocompress", unit="cand", disable=not progress)
        t = time.perf_counter()
        self.reference = self._measure(Candidate("fp32", "reference", {"coarse": 0.0, "fine": 0.0},
                                                 {"coarse": "fp32", "fine": "fp32"}), pair)
        self.reference_cost = time.perf_counter() - t
        self.stopped_early = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def out_of_time(self, final_stage: bool = False) -> bool:
        """True once the budget, less what confirmation needs (about three fp32 measurements), is spent;
        before the final (accelerate) stage also less the share of it kept for that stage
        (`SearchOptions.accelerate_share`, when there are accelerators): it runs last, on the fastest
        candidates found, and would otherwise get nothing whenever the earlier stages fill the budget."""
        keep = 0.0 if final_stage or not self.options.accelerators else self.options.accelerate_share
        late = self.elapsed() + 3 * self.reference_cost > self.options.budget_s * (1.0 - keep)
        self.stopped_early = self.stopped_early or late
        return late

    def _measure(self, cand: Candidate, pair: ModelPair) -> Candidate:
        """Quality and size (`nerf_eval.measure.quality`, without ꟻLIP: the search ranks on PSNR) and the
        paired speed-up of one candidate, then its drop and feasibility against fp32."""
        cand.record, _ = measure_quality(cand.name, pair, self.scene, self.views, self.settings, with_flip=False,
                                         identity=self.spec.to_dict())
        ref = getattr(self, "reference", None)
        timing = self._time(pair, None if ref is None else self.pair)
        rec = cand.record.take_timing(timing)
        if ref is None:  # fp32 itself, timed against itself
            rec.speedup = 1.0
        ref = ref or cand
        cand.drop = ref.psnr - cand.psnr
        cand.size_ratio = cand.size_bytes / ref.size_bytes
        cand.feasible = cand.drop <= self.options.max_drop
        return cand

    def _time(self, pair: ModelPair, reference: ModelPair | None) -> PairedTiming:
        """The latency batch rendered by `pair` interleaved with `reference` (fp32), so that load from
        other processes, which changes over minutes, cancels out of the speed-up (the median of the
        per-round ratios). Without a reference (fp32 itself) the pair is timed against itself."""
        return time_render_pair(pair if reference is None else reference, pair, self.latency_rays, self.settings,
                                PairedProtocol(rounds=self.options.repeats, warmup=1), name="candidate")

    def add(self, cand: Candidate, build: Callable[[], ModelPair]) -> ModelPair | None:
        """Build and measure one candidate (a failure is recorded, not raised)."""
        try:
            pair = build()
            self._measure(cand, pair)
        except NerfEvalError as e:
            cand.record = Record(cand.name, error=str(e).splitlines()[0], **self.spec.to_dict())
            pair = None
        self.candidates.append(cand)
        self.bar.update(1)
        best = rank(self.candidates + [self.reference], self.options.objective)
        if best:
            self.bar.set_postfix_str(f"best {best[0].name} ({best[0].drop:+.2f} dB, {best[0].speedup:.2f}x)")
        return pair


def _pick(scene: Scene, split: str, n: int) -> list[int]:
    """`n` views spread evenly over a split (the val split falls back to train when a scene has none)."""
    views = scene.split(split) if scene.splits.get(split) else scene.split("train")
    if not views:
        raise NerfEvalError(f"scene {scene.name!r} has no {split} views to measure on")
    step = max(1, len(views) // n)
    return views[::step][:n]


@dataclass(frozen=True)
class SpecSource:
    """What the search's measurement spec names beyond what `search` is handed: the scene spec string,
    the checkpoint's sha256 and the scale the scene was loaded at."""

    scene: str = ""
    checkpoint_sha256: str = ""
    scale: float = 1.0


def search(pair: ModelPair, scene: Scene, calibration: Rays, options: SearchOptions = SearchOptions(),
           settings: RenderSettings = RenderSettings(), progress: bool = True,
           source: SpecSource = SpecSource()) -> SearchResult:
    """Search, rank and confirm (see the module docstring); `scene` should be at the resolution to judge.
    Every candidate's record names the search's `MeasurementSpec` (its calibration views, `source`)."""
    s = _Search(pair, scene, calibration, options, settings, progress, source)
    rule = options.prune_rule
    pruner = get_compressor(REGISTRY.spec(rule, ratio=0.0))
    stats, scores = pruner.analyse(pair, calibration)
    pruned: dict[tuple[float, float], tuple[Candidate, ModelPair]] = {(0.0, 0.0): (s.reference, pair)}
    _precision_stage(s, s.reference, pair)  # first: under a short budget, int8/bf16 alone are measured
    for rc, rf in itertools.product(options.ratios, options.ratios):
        if (rc, rf) == (0.0, 0.0) or s.out_of_time():
            continue
        ratios = {"coarse": rc, "fine": rf}
        name = candidate_name(rule, ratios, {"coarse": "fp32", "fine": "fp32"})
        comp = get_compressor(name)
        out = s.add(Candidate(name, "prune", ratios, {"coarse": "fp32", "fine": "fp32"}),
                    lambda c=comp: c.prune(pair, stats, scores))
        if out is not None:
            pruned[(rc, rf)] = (s.candidates[-1], out)
    points = sorted((v for k, v in pruned.items() if k != (0.0, 0.0) and v[0].feasible),
                    key=lambda v: -v[0].speedup)[:options.stage2_points]
    for base, base_pair in points:
        _precision_stage(s, base, base_pair)
    for budget in options.mixed_budgets:
        for base, base_pair in [(s.reference, pair)] + points[:1]:
            if s.out_of_time():
                break
            spec = str(REGISTRY.spec("mixed", budget=budget))
            s.add(Candidate(candidate_name(rule, base.ratios, spec), "mixed", dict(base.ratios), spec),
                  lambda p=base_pair, sp=spec: get_compressor(sp).compress(p, calibration))
    _accelerate_stage(s)
    s.bar.close()
    everything = [s.reference] + s.candidates
    for c in pareto_front(everything):
        c.pareto = True
    chosen, chosen_pair, confirm_views, fp32_psnr = _confirm(s, everything)
    return SearchResult(s.candidates, s.reference, chosen, chosen_pair, options, s.elapsed(), s.stopped_early,
                        s.views, confirm_views, fp32_psnr, s.spec)


def accelerator_variants(names: Iterable[str]) -> list[str]:
    """What the accelerate stage appends to each base, from accelerator names grouped by their registry
    base (`samples`, `samples:32:coarse=32`, `occupancy`, `coarse-grid`): each group's first name alone,
    then one name of every group composed in the order given, for every combination
    (`samples+occupancy+coarse-grid`, `samples:32:coarse=32+occupancy+coarse-grid`), without repeats."""
    groups: dict[str, list[str]] = {}
    for name in names:
        spec = REGISTRY.parse(name)
        key = spec.base if isinstance(spec, CompressorSpec) else name
        groups.setdefault(key, []).append(name)
    variants = [group[0] for group in groups.values()]
    for combo in itertools.product(*groups.values()) if groups else ():
        name = SEPARATOR.join(combo)
        if name not in variants:
            variants.append(name)
    return variants


def _accelerate_stage(s: _Search) -> None:
    """The fastest feasible candidates so far (fp32 included), each with the accelerators appended last
    (`accelerator_variants`: each alone, then composed at every search point): an occupancy grid or a
    coarse-density table is a snapshot of the final model, so it follows pruning and precision."""
    bases = rank([s.reference] + s.candidates, "speed")[:s.options.accelerate_points]
    accelerators = accelerator_variants(s.options.accelerators)
    for base in bases:
        for accelerator in accelerators:
            if s.out_of_time(final_stage=True):
                return
            name = accelerator if base is s.reference else SEPARATOR.join((base.name, accelerator))
            s.add(Candidate(name, "accelerate", dict(base.ratios), base.precision),
                  lambda n=name: get_compressor(n).compress(s.pair, s.calibration))


def _precision_stage(s: _Search, base: Candidate, base_pair: ModelPair) -> None:
    """Every per-network precision on top of one (pruned or fp32) pair, while time lasts."""
    for precision, build in _precision_variants(base_pair, s.calibration, s.options.precisions,
                                                s.options.int8_heads):
        if all(p == "fp32" for p in precision.values()) or s.out_of_time():
            continue
        name = candidate_name(s.options.prune_rule, base.ratios, precision, s.options.int8_heads)
        s.add(Candidate(name, "precision", dict(base.ratios), precision), build)


def _precision_variants(base: ModelPair, calibration: Rays, precisions: tuple[str, ...],
                        int8_heads: str = DEFAULT_HEADS):
    """(per-network precision, builder) for every combination; int8 networks (with `int8_heads` heads) are
    quantized once."""
    cache: dict[str, ModelPair] = {}

    def int8() -> ModelPair:
        if "int8" not in cache:
            cache["int8"] = static_int8_pair(base, calibration, "both", heads=int8_heads)
        return cache["int8"]

    def network(name: str, precision: str):
        float_net = base.networks()[name]
        if precision == "int8":
            return int8().networks()[name]
        return cast_network(float_net, DTYPES[precision])

    out = []
    for pc, pf in itertools.product(precisions, precisions):
        precision = {"coarse": pc, "fine": pf}
        out.append((precision, lambda pc=pc, pf=pf: ModelPair(network("coarse", pc), network("fine", pf),
                                                             base.config, dict(base.meta))))
    return out


def _confirm(s: _Search, everything: list[Candidate]):
    """Rebuild the best candidates by name and check them on held-out test views against fp32.

    fp32 itself can come out best (on a machine where nothing is faster, say); it is then the answer."""
    views = _pick(s.scene, "test", s.options.confirm_views)
    fp32_psnr = evaluate(s.pair, s.scene, views, s.settings, progress=False, with_flip=False).mean["psnr"]
    for cand in rank(everything, s.options.objective)[:s.options.confirm_tries]:
        if cand is s.reference:
            cand.confirmed_drop = 0.0
            return cand, s.pair, views, fp32_psnr
        pair = get_compressor(cand.name).compress(s.pair, s.calibration)
        psnr = evaluate(pair, s.scene, views, s.settings, progress=False, with_flip=False).mean["psnr"]
        cand.confirmed_drop = fp32_psnr - psnr
        if cand.confirmed_drop <= s.options.max_drop:
            return cand, pair, views, fp32_psnr
    return None, None, views, fp32_psnr


def markdown(result: SearchResult) -> str:
    """The search as a Markdown table, best first (chosen marked), with the settings."""
    o = result.options
    lines = [f"# autocompress: {o.objective}, PSNR drop ≤ {o.max_drop} dB\n",
             f"Calibration views (val split) {result.calibration_views}; confirmation views (test split) "
             f"{result.confirm_views}; searched {len(result.candidates)} candidates in {result.elapsed_s:.0f} s"
             f"{' (time budget reached)' if result.stopped_early else ''}.\n",
             f"Chosen: **{result.chosen.name}** (held-out drop {result.chosen.confirmed_drop:+.2f} dB)\n"
             if result.chosen else "Chosen: none of the candidates met the budget on held-out views.\n",
             "Speed-up: fp32 and the candidate timed interleaved on one ray batch, the median of the per-round "
             "ratios (IQR: their interquartile range; on fp32's row, fp32 timed against itself).\n",
             "| candidate | stage | PSNR dB | drop dB | held-out drop | latency s | speed-up | IQR | size MB | size % "
             "| front |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = sorted([result.reference] + result.candidates,
                  key=lambda c: (c.error is not None, not c.feasible, -c.speedup if o.objective == "speed"
                                 else c.size_bytes))
    for c in rows:
        if c.error:
            lines.append(f"| {c.name} | {c.stage} | failed: {c.error} | | | | | | | | |")
            continue
        mark = " ← chosen" if result.chosen is c else ""
        held = f"{c.confirmed_drop:+.2f}" if c.confirmed_drop is not None else ""
        lines.append(f"| {c.name}{mark} | {c.stage} | {c.psnr:.2f} | {c.drop:+.2f} | {held} | {c.latency_s:.3f} | "
                     f"{c.speedup:.2f}× | {c.speedup_spread:.2f} | {c.size_bytes / 1e6:.2f} | "
                     f"{100 * c.size_ratio:.0f}% | "
                     f"{'yes' if c.pareto else ''} |")
    return "\n".join(lines) + "\n"


def front_plot(result: SearchResult, path) -> None:
    """PSNR vs speed-up and PSNR vs size: every candidate, the Pareto front, the budget line, the choice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [c for c in [result.reference] + result.candidates if c.error is None]
    front = [c for c in ok if c.pareto]
    floor = result.reference.psnr - result.options.max_drop
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, x, label in ((axes[0], lambda c: c.speedup, "speed-up vs fp32 (same run)"),
                         (axes[1], lambda c: c.size_bytes / 1e6, "serialized size (MB)")):
        ax.scatter([x(c) for c in ok], [c.psnr for c in ok], s=18, color="0.65", label="candidate")
        ax.scatter([x(c) for c in front], [c.psnr for c in front], s=34, color="tab:blue", label="Pareto front")
        ax.axhline(floor, color="tab:red", lw=1, ls="--", label=f"fp32 − {result.options.max_drop} dB")
        ax.scatter([x(result.reference)], [result.reference.psnr], marker="s", s=50, color="black", label="fp32")
        if result.chosen:
            ax.scatter([x(result.chosen)], [result.chosen.psnr], marker="*", s=220, color="tab:orange",
                       label=f"chosen: {result.chosen.name}", zorder=5)
        ax.set(xlabel=label, ylabel="PSNR on calibration views (dB)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"autocompress ({result.options.objective}): {len(ok)} candidates")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
