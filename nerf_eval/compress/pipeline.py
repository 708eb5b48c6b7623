"""Composition of compressors: `a:p+b:q` runs compressor `a:p`, then `b:q` on its result.

Example: `prune-activation:0.3+int8-ptq-both` prunes, then quantizes the smaller float model. Each stage
is looked up in the registry by name, so any registered compressor can be a stage; every stage receives
the same calibration rays. Order matters: pruning needs float NeRF networks, so it comes first.
`Registry.parse` reads any name containing '+' as a `PipelineSpec` and `Registry.get` builds its stages
from that same registry (so a pytest session's copy sees its own compressors); `pipeline:a+b` names the
same compressor and a one-stage `pipeline:a` is `a` itself; the `pipeline` entry describes the syntax.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nerf_eval.compress.base import REGISTRY, Compressor, Registry, register
from nerf_eval.compress.params import SEPARATOR, CompressorSpec, PipelineSpec
from nerf_eval.errors import CompressorError
from nerf_eval.model import ModelPair
from nerf_eval.render import Rays


def combined_gates(stages: list[Compressor]) -> dict[str, float]:
    """Default gates of a chain: each `*_drop` gate that every stage sets, summed (drops add up).

    A quantity any stage leaves ungated stays ungated: the chain cannot promise more than its parts."""
    if not stages:
        return {}
    keys = set.intersection(*(set(getattr(s, "gates", {}) or {}) for s in stages))
    return {k: float(sum(s.gates[k] for s in stages)) for k in sorted(keys) if k.endswith("_drop")}


@dataclass
class Pipeline:
    """A compressor that runs `stages` in order, each on the previous stage's output."""

    stages: list[Compressor]
    name: str = ""
    gates: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not self.stages:
            raise CompressorError("pipeline: needs at least one stage")
        self.name = self.name or SEPARATOR.join(s.name for s in self.stages)
        self.gates = self.gates or combined_gates(self.stages)
        self.description = self.description or " then ".join(s.name for s in self.stages)

    def compress(self, pair: ModelPair, calibration: Rays) -> ModelPair:
        out = pair
        for stage in self.stages:
            try:
                out = stage.compress(out, calibration)
            except CompressorError as e:
                raise CompressorError(f"{self.name}: stage {stage.name}: {e}") from None
        return out


def build_pipeline(spec: str | PipelineSpec | CompressorSpec, registry: Registry = REGISTRY) -> Compressor:
    """The compressor named `spec` (`a:p+b:q`, optionally prefixed `pipeline:`), stages from `registry`."""
    return registry.get(spec)


def _refuse(spec: CompressorSpec) -> Compressor:
    raise CompressorError(f"{spec}: a pipeline is compressor names joined by '+', e.g. "
                          "prune-activation:0.3+int8-ptq-both")


Registry.compose = Pipeline  # how every registry joins the stages of `a:p+b:q`
# `pipeline:a+b` is parsed as the composition a+b (nerf_eval.compress.params); the entry describes the syntax
register("pipeline", _refuse, defaults=(),
         description="stages joined by '+', run in order (e.g. prune-activation:0.3+int8-ptq-both)")
