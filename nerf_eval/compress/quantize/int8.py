"""What static and dynamic int8 share: the engine int8 weights are packed for, and the int8 qconfig."""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator
from unittest import mock

import torch
import torch.fx.config
from torch.ao.quantization import QConfig
from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver, PerChannelMinMaxObserver

from nerf_eval.hardware import int8_engine, quantized_engine

# torch.fx.config's switch for the tracer's per-node stack traces: torch 2.13 has it, 2.11 does not
FX_STACK_TRACE_SWITCH = "do_not_emit_stack_traces"


@contextlib.contextmanager
def int8_packing(engine: str | None = None) -> Iterator[str]:
    """Pack int8 weights with `engine` (default: this machine's fastest, `nerf_eval.hardware.int8_engine`),
    quietly; yields the engine's name.

    torch.ao's FX API warns that it is deprecated at every call, and its tracer records a stack trace per
    node (whose first use imports the whole compiler stack, seconds per process): both are switched off
    (where this torch has the switch: 2.13 has it, 2.11 does not)."""
    engine = engine or int8_engine()
    no_stack_traces = (mock.patch.object(torch.fx.config, FX_STACK_TRACE_SWITCH, True)
                       if hasattr(torch.fx.config, FX_STACK_TRACE_SWITCH) else contextlib.nullcontext())
    with quantized_engine(engine), warnings.catch_warnings(), no_stack_traces:
        warnings.simplefilter("ignore")
        yield engine


def int8_qconfig(observer: str = "minmax", reduce_range: bool = False) -> QConfig:
    """Static int8 qconfig: uint8 activations over the full range (7 bits with `reduce_range`, for CPUs
    whose int8 GEMM saturates, see `nerf_eval.hardware.int8_saturates`), symmetric per-channel int8
    weights in [-127, 127]."""
    act = {"minmax": MinMaxObserver, "histogram": HistogramObserver}[observer]
    return QConfig(activation=act.with_args(dtype=torch.quint8, reduce_range=reduce_range),
                   weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                                             quant_min=-127, quant_max=127))
