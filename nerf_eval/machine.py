"""The record of where a figure was measured: the CPU, its fast-path flags, torch, and the kernels this
process chose on it (the int8 engine, the half-precision Linear kernels).

Two parts, because they are compared differently. `machine_identity` holds only what stays the same
from run to run on one machine; it goes into pytest-benchmark's `machine_info`, which pytest-benchmark
compares between a saved run and the current one and warns about when it differs. `machine_record` adds
what this process measured and chose (kernels, with the probes' reasons and timings, and the load
average); it goes into roofline reports and a saved run's `nerfcompress` section, so that a figure can
be traced to the path that produced it."""

from __future__ import annotations

import os

import torch

from nerf_eval.hardware import cpu_flags, cpu_name, int8_engine_probe, machine_summary
from nerf_eval.kernels import int8_head_kernel, linear_kernels


def machine_identity() -> dict:
    """CPU name, summary line (family, model, flags, torch, threads) and flags, torch and its threads."""
    return {"cpu": cpu_name(), "summary": machine_summary(), "flags": cpu_flags(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def machine_record() -> dict:
    """`machine_identity` with the int8 engine, the half-precision Linear kernels and the int8 heads'
    kernel chosen here (and why), and the 1-minute load average (None where the OS has none)."""
    probe = int8_engine_probe()
    kernels = linear_kernels()
    return {**machine_identity(), "int8_engine": probe["engine"], "int8_engine_reason": probe["reason"],
            "linear_kernels": {d: k["kernel"] for d, k in kernels.items()},
            "linear_kernel_reasons": {d: k["reason"] for d, k in kernels.items()},
            "int8_head_kernel": int8_head_kernel(),
            "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
