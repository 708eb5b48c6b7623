"""Saving and loading compressed model pairs (`nerf-eval compress` writes them, `evaluate` reads them).

Each network is stored as a record: its kind, the float NeRF config it was built from, its state dict
(packed int8/int4 weights and scales included) and kind-specific settings. A kind knows how to describe
a network and how to rebuild the same module structure before loading the state, so nothing but
tensors and plain values is pickled and files load with `torch.load(..., weights_only=True)`.
The modules that define compressed networks register their kinds (`nerf_eval.compress.kinds`), so this
module knows no compressor's internals. An occupancy grid (`nerf_eval.compress.occupancy`) is stored
beside the networks as packed bits and plain values, sample caps (`nerf_eval.compress.samples`) as two ints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from nerf_eval.checkpoint import (FINE_NONE, FINE_OWN, atomic_save, build_network, load_torch_file,
                                  pair_from_checkpoint)
from nerf_eval.compress.base import SAVED_META
from nerf_eval.compress.coarse_grid import DensityGrid
from nerf_eval.compress.kinds import KINDS, NetworkKind, register_kind
from nerf_eval.compress.occupancy import OccupancyGrid
from nerf_eval.errors import CheckpointError, describe, first_line
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import OCCUPANCY_KEY, PROPOSAL_KEY, SAMPLES_KEY, SampleCaps

FORMAT = "nerfcompress-compressed-v1"
# How each pair.meta entry in SAVED_META is read back, and what a load error calls it.
META_READERS = {OCCUPANCY_KEY: (OccupancyGrid.from_state, "occupancy grid"),
                SAMPLES_KEY: (SampleCaps.from_state, "sample caps"),
                PROPOSAL_KEY: (DensityGrid.from_state, "coarse density grid")}

__all__ = ["FORMAT", "KINDS", "NetworkKind", "is_compressed_file", "load_any", "load_compressed", "network_record",
           "register_kind", "save_compressed"]


def network_record(net: nn.Module) -> dict:
    for kind in KINDS.values():
        if kind.matches(net):
            return {"kind": kind.name, "settings": kind.describe(net), "state": net.state_dict()}
    raise CheckpointError(f"cannot save a network of type {type(net).__name__}: no saved-model kind handles it")


def save_compressed(path: str | Path, pair: ModelPair, compressor: str, source: dict | None = None,
                    overwrite: bool = False) -> Path:
    """Write a compressed pair; `source` records where it came from (checkpoint sha256, scene)."""
    obj = {"format": FORMAT, "compressor": compressor, "config": pair.config.to_dict(),
           "source": dict(source or {}),
           "networks": {name: network_record(net) for name, net in pair.networks().items()}}
    for key in SAVED_META:  # what the accelerators render with travels with the networks, as plain values
        if pair.meta.get(key) is not None:
            obj[key] = pair.meta[key].to_state()
    return atomic_save(obj, path, overwrite=overwrite)


def is_compressed_file(obj: dict) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load_compressed(path: str | Path) -> ModelPair:
    """Rebuild a compressed pair written by `save_compressed`."""
    path = Path(path)
    return _rebuild(path, load_torch_file(path, "compressed model"))


def _check_finite(state: Any, where: str) -> None:
    """Every tensor of a saved network state is finite (quantized ones after dequantizing)."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: state is a {type(state).__name__}, not a dict of tensors")
    for k, t in state.items():
        if not isinstance(t, torch.Tensor):
            continue  # packed-parameter entries and plain settings are checked by load_state_dict
        values = t.dequantize() if t.is_quantized else t
        if (values.is_floating_point() or values.is_complex()) and not torch.isfinite(values).all():
            raise CheckpointError(f"{where}: {k} holds NaN or inf values")


def _rebuild_network(path: Path, name: str, rec: Any) -> tuple[nn.Module, NeRFConfig]:
    """The network a record describes, and the config it was built for."""
    where = f"{path} [{name}]"
    if not isinstance(rec, dict) or not isinstance(rec.get("settings"), dict) or "state" not in rec:
        raise CheckpointError(f"{where}: network record is not a dict with 'kind', 'settings' and 'state'")
    kind = KINDS.get(rec.get("kind")) if isinstance(rec.get("kind"), str) else None
    if kind is None:
        raise CheckpointError(f"{path}: {name} network has unknown kind {describe(rec.get('kind'))}")
    settings = rec["settings"]
    if not isinstance(settings.get("config"), dict):
        raise CheckpointError(f"{where}: settings have no NeRF 'config' dict")
    try:
        config = NeRFConfig.from_dict(settings["config"])
    except (TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{where}: bad NeRF config ({first_line(e)[:160]})") from None
    if kind.name == "nerf":
        return build_network(rec["state"], config, where), config
    _check_finite(rec["state"], where)
    try:
        module = kind.rebuild(settings)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{where}: bad {kind.name} settings ({first_line(e)[:160]})") from None
    try:
        with kind.loading():  # int8 kinds re-pack their weights here, with this machine's engine
            module.load_state_dict(rec["state"])
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
        raise CheckpointError(f"{path}: {name} network does not match its recorded structure "
                              f"({first_line(e)[:160]})") from None
    return module.eval(), config


def _rebuild(path: Path, obj: Any) -> ModelPair:
    if not is_compressed_file(obj):
        raise CheckpointError(f"{path}: not a compressed model of format {FORMAT!r}")
    networks = obj.get("networks")
    if not isinstance(networks, dict) or "coarse" not in networks:
        raise CheckpointError(f"{path}: no 'networks' entry with a coarse network")
    unknown = sorted(str(n) for n in networks if n not in ("coarse", "fine"))
    if unknown:
        raise CheckpointError(f"{path}: unexpected networks {unknown} (expected coarse and fine)")
    built = {name: _rebuild_network(path, name, rec) for name, rec in networks.items()}
    nets = {name: net for name, (net, _) in built.items()}
    if not isinstance(obj.get("config"), dict):
        raise CheckpointError(f"{path}: no NeRF 'config' dict")
    try:
        config = NeRFConfig.from_dict(obj["config"])
    except (TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{path}: bad 'config' entry ({first_line(e)[:160]})") from None
    for name, (_, net_config) in built.items():  # the renderer encodes inputs by the pair's config
        if (net_config.input_ch, net_config.input_ch_views) != (config.input_ch, config.input_ch_views):
            raise CheckpointError(f"{path}: the {name} network takes {net_config.input_ch}+"
                                  f"{net_config.input_ch_views} encoded inputs, but the 'config' entry encodes "
                                  f"{config.input_ch}+{config.input_ch_views}")
    source = obj.get("source", {})
    meta = {"compressor": str(obj.get("compressor")), "source": source if isinstance(source, dict) else {},
            "checkpoint": str(path), "fine_network": FINE_OWN if "fine" in nets else FINE_NONE}
    for key, (from_state, what) in META_READERS.items():
        if obj.get(key) is not None:
            try:
                meta[key] = from_state(obj[key])
            except (ValueError, TypeError, RuntimeError) as e:
                raise CheckpointError(f"{path}: bad {what} ({first_line(e)[:160]})") from None
    return ModelPair(nets["coarse"], nets.get("fine"), config, meta)


def load_any(path: str | Path) -> ModelPair:
    """A float checkpoint (ours or nerf-pytorch) or a compressed model, whichever `path` holds."""
    path = Path(path)
    obj = load_torch_file(path)
    return _rebuild(path, obj) if is_compressed_file(obj) else pair_from_checkpoint(path, obj)
