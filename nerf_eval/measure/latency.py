"""Paired latency: a reference and its candidates timed interleaved on the same input, in one measurement.

Why paired: timing the reference and a compressed model minutes apart turns every change of load on the
machine in between into a "speed-up" (on a loaded 2-core machine four pruned models of identical
architecture once read 1.41x to 8.09x, and fp32 read 0.84x of itself; issue 18). Here every round runs
the reference and each candidate once, back to back, so load that changes more slowly than a round
falls on both sides of the round alike. A candidate's speed-up is the median over rounds of its
per-round ratio (reference time / candidate time in the same round): one round hit by a burst on one
side only moves the median little. The spread of those ratios (their interquartile range, also min and
max) is kept beside the speed-up so a reader can see how far to trust it.

Order: which side runs first in a round can matter (caches, CPU frequency, memory the previous call
freed), so the order changes from round to round: `shuffle` (the default) draws it from a seeded RNG,
`alternate` rotates it (with one candidate: A B, B A, A B, ...; each callable takes each position
equally often over a multiple of k rounds). Rotation keeps who-follows-whom fixed among three or more
callables, and a call that follows one with the same weights finds them in cache: fp32 timed against
itself with two other candidates read 1.01x-1.04x in five of five runs rotated.

Garbage collection: Python's cyclic collector runs inside whichever call happens to cross its
allocation threshold, charging a pause to one side of one round only. With `gc=True` the collector is
paused during each round and runs between rounds instead (a full collection once before the first
round, which takes about 0.1 s with torch loaded; then the young generations before each round, well
under a millisecond), so its pauses fall between timed calls. Reference counting still frees objects
(tensors) as usual, so memory does not build up within a round.

Callables in, numbers out: nothing here knows pytest or NeRFs (`nerf_eval.measure.render_latency` builds
the callables for rendering a ray batch). The clock is injectable, so the arithmetic is tested exactly
with a fake clock.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

ORDERS = ("alternate", "shuffle")
PAIRINGS = ("shared", "adjacent")
REFERENCE = "<reference>"  # the reference's slot in a round's order (never a candidate name)

Clock = Callable[[], int]  # monotonic nanoseconds, as time.perf_counter_ns


@dataclass(frozen=True)
class PairedProtocol:
    """How a paired measurement runs; one value shared by every caller so their figures compare.

    rounds: timed rounds at least (each round calls the reference and every candidate once).
    warmup: untimed calls of each callable before the first round (caches, lazy initialisation).
    min_time_s: after `rounds`, keep adding rounds until the timed rounds have lasted this long in all
        (0: exactly `rounds`); a fast callable then gets more rounds and a steadier median.
    max_rounds: never more rounds than this, whatever `min_time_s` asks.
    order: "shuffle" (seeded random order each round) or "alternate" (rotate the order each round).
    seed: the RNG seed of "shuffle".
    pairing: "shared" (each round calls the reference once and pairs that call with every candidate: k+1
        calls a round, and candidates are compared on the very same reference calls) or "adjacent" (each
        candidate gets a reference call of its own right next to it: 2k calls a round, the two calls of
        a pair as close in time as they can be, which matters when the load changes within a round).
    gc: pause the collector during each round and collect between rounds (see the module docstring).
    """

    rounds: int = 5
    warmup: int = 1
    min_time_s: float = 0.0
    max_rounds: int = 1000
    order: str = "shuffle"
    seed: int = 0
    gc: bool = True
    pairing: str = "shared"

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"paired timing: rounds must be at least 1, got {self.rounds}")
        if self.warmup < 0:
            raise ValueError(f"paired timing: warmup must be non-negative, got {self.warmup}")
        if not (math.isfinite(self.min_time_s) and self.min_time_s >= 0):
            raise ValueError(f"paired timing: min_time_s must be a non-negative number, got {self.min_time_s}")
        if self.max_rounds < self.rounds:
            raise ValueError(f"paired timing: max_rounds ({self.max_rounds}) is below rounds ({self.rounds})")
        if self.order not in ORDERS:
            raise ValueError(f"paired timing: order must be one of {ORDERS}, got {self.order!r}")
        if self.pairing not in PAIRINGS:
            raise ValueError(f"paired timing: pairing must be one of {PAIRINGS}, got {self.pairing!r}")


@dataclass(frozen=True)
class PairedTiming:
    """One candidate measured against the reference in the same rounds.

    times_s / reference_times_s: each side's time in each round (the candidate's own times are what a
    pytest-benchmark table shows). ratios: reference / candidate per round (> 1: the candidate is
    faster). speedup: the median of `ratios`. spread: their interquartile range (q3 - q1), in the units
    of the speed-up; ratio_min / ratio_max bound every round. before_reference: per round, whether the
    candidate ran before the reference. threads: torch intra-op threads during the timing (0: not recorded;
    set by `nerf_eval.measure.render_latency`, since nothing here knows torch).
    """

    name: str
    times_s: tuple[float, ...]
    reference_times_s: tuple[float, ...]
    ratios: tuple[float, ...]
    speedup: float
    spread: float
    ratio_q1: float
    ratio_q3: float
    ratio_min: float
    ratio_max: float
    before_reference: tuple[bool, ...] = ()
    threads: int = 0

    @property
    def rounds(self) -> int:
        return len(self.ratios)

    @property
    def latency_s(self) -> float:
        """The candidate's median time per call (s)."""
        return statistics.median(self.times_s)

    @property
    def reference_latency_s(self) -> float:
        """The reference's median time per call (s), in the rounds shared with this candidate."""
        return statistics.median(self.reference_times_s)

    def summary(self) -> str:
        """e.g. '1.02x (IQR 0.99-1.04, range 0.95-1.10, 7 rounds)'."""
        return (f"{self.speedup:.2f}x (IQR {self.ratio_q1:.2f}-{self.ratio_q3:.2f}, "
                f"range {self.ratio_min:.2f}-{self.ratio_max:.2f}, {self.rounds} rounds)")

    def to_dict(self) -> dict:
        """Plain JSON-ready values (tuples as lists), with the two medians added."""
        d = asdict(self)
        d.update({k: list(v) for k, v in d.items() if isinstance(v, tuple)})
        d["latency_s"], d["reference_latency_s"], d["rounds"] = self.latency_s, self.reference_latency_s, self.rounds
        return d


def quantile(sorted_values: Sequence[float], p: float) -> float:
    """The p-quantile of already sorted values by linear interpolation between order statistics (numpy's
    default, statistics.quantiles' "inclusive"); exact at the order statistics, so inf-safe there."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    h = (len(sorted_values) - 1) * p
    lo = math.floor(h)
    frac = h - lo
    if frac == 0:
        return float(sorted_values[lo])
    return float(sorted_values[lo] + frac * (sorted_values[lo + 1] - sorted_values[lo]))


def pair_ratio(reference_s: float, candidate_s: float) -> float:
    """reference / candidate for one round; a zero-time candidate is infinitely faster (1.0 if both are 0)."""
    if candidate_s > 0:
        return reference_s / candidate_s
    return 1.0 if reference_s <= 0 else math.inf


def summarize(name: str, times_s: Sequence[float], reference_times_s: Sequence[float],
              before_reference: Sequence[bool] = ()) -> PairedTiming:
    """The paired figures from per-round times (round i of one side paired with round i of the other).

    Public so that times gathered elsewhere (e.g. by pytest-benchmark, interleaved by the caller) are
    reduced by the same rule."""
    if len(times_s) != len(reference_times_s) or not times_s:
        raise ValueError(f"paired timing: {len(times_s)} candidate and {len(reference_times_s)} reference "
                         "times; need the same positive number")
    ratios = tuple(pair_ratio(r, c) for r, c in zip(reference_times_s, times_s))
    s = sorted(ratios)
    q1, q3 = quantile(s, 0.25), quantile(s, 0.75)
    return PairedTiming(name=name, times_s=tuple(float(t) for t in times_s),
                        reference_times_s=tuple(float(t) for t in reference_times_s), ratios=ratios,
                        speedup=quantile(s, 0.5), spread=q3 - q1, ratio_q1=q1, ratio_q3=q3, ratio_min=s[0],
                        ratio_max=s[-1], before_reference=tuple(bool(b) for b in before_reference))


def round_orders(names: Sequence[str], protocol: PairedProtocol):
    """An endless iterator over the order of each round: REFERENCE and `names`, rotated or shuffled."""
    slots = [REFERENCE, *names]
    rng = random.Random(protocol.seed)
    r = 0
    while True:
        if protocol.order == "alternate":
            k = r % len(slots)
            yield slots[k:] + slots[:k]
        else:
            order = list(slots)
            rng.shuffle(order)
            yield order
        r += 1


def round_plans(names: Sequence[str], protocol: PairedProtocol):
    """An endless iterator over rounds, each a list of (slot, candidates whose pair this call belongs to).

    "shared": one reference call per round, paired with every candidate (orders from `round_orders`).
    "adjacent": the candidates in a rotated or shuffled order, each next to its own reference call,
    the reference first or second alternating from round to round for each candidate (or by a seeded
    coin with "shuffle")."""
    if protocol.pairing == "shared":
        for order in round_orders(names, protocol):
            yield [(slot, tuple(names) if slot == REFERENCE else (slot,)) for slot in order]
        return  # not reached: round_orders never ends
    rng = random.Random(protocol.seed)
    r = 0
    while True:
        order = list(names)
        if protocol.order == "alternate":
            k = r % len(order)
            order = order[k:] + order[:k]
        else:
            rng.shuffle(order)
        plan = []
        for name in order:
            ref_first = (r + names.index(name)) % 2 == 0 if protocol.order == "alternate" else rng.random() < 0.5
            pair = [(REFERENCE, (name,)), (name, (name,))]
            plan += pair if ref_first else pair[::-1]
        yield plan
        r += 1


def time_paired(reference: Callable[[], object], candidates: Mapping[str, Callable[[], object]],
                protocol: PairedProtocol = PairedProtocol(), clock: Clock = time.perf_counter_ns
                ) -> dict[str, PairedTiming]:
    """Time `reference` and every candidate interleaved (see the module docstring); one result per
    candidate, in the order given, each paired with the reference call of its round (`pairing`
    "shared": one call per round shared by all candidates; "adjacent": a call of its own, right
    before or after the candidate's). `clock` returns nanoseconds."""
    if not candidates:
        raise ValueError("paired timing: give at least one candidate to time against the reference")
    if REFERENCE in candidates:
        raise ValueError(f"paired timing: {REFERENCE!r} is reserved for the reference")
    fns: dict[str, Callable[[], object]] = {REFERENCE: reference, **candidates}
    plans = round_plans(list(candidates), protocol)
    plan = next(plans)
    for _ in range(protocol.warmup):
        for slot in dict.fromkeys(slot for slot, _ in plan):
            fns[slot]()
    own: dict[str, list[int]] = {name: [] for name in candidates}
    ref: dict[str, list[int]] = {name: [] for name in candidates}
    before: dict[str, list[bool]] = {name: [] for name in candidates}
    min_ns = protocol.min_time_s * 1e9
    spent = 0
    rounds = 0
    was_enabled = gc.isenabled()

    def another_round() -> bool:
        return rounds < protocol.rounds or (spent < min_ns and rounds < protocol.max_rounds)

    try:
        while another_round():
            if protocol.gc:
                gc.collect(1 if rounds else 2)
                gc.disable()
            try:
                for slot, pairs in plan:
                    t0 = clock()
                    fns[slot]()
                    dt = clock() - t0
                    spent += dt
                    for name in pairs:
                        if slot == REFERENCE:
                            ref[name].append(dt)
                        else:
                            own[name].append(dt)
                            before[name].append(len(ref[name]) == rounds)
            finally:
                if protocol.gc and was_enabled:
                    gc.enable()
            rounds += 1
            plan = next(plans)
    finally:
        if was_enabled:
            gc.enable()
    return {name: summarize(name, [t / 1e9 for t in own[name]], [t / 1e9 for t in ref[name]], before[name])
            for name in candidates}


def time_pair(reference: Callable[[], object], candidate: Callable[[], object],
              protocol: PairedProtocol = PairedProtocol(), clock: Clock = time.perf_counter_ns,
              name: str = "candidate") -> PairedTiming:
    """One candidate against the reference (see `time_paired`)."""
    return time_paired(reference, {name: candidate}, protocol, clock)[name]
