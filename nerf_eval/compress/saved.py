"""Saving and loading compressed model pairs (`nerf-eval compress` writes them, `evaluate` reads them).

Each network is stored as a record: its kind, the float NeRF config it was built from, its state dict
(packed int8/int4 weights and scales included) and kind-specific settings. A kind knows how to describe
a network and how to rebuild the same module structure before loading the state, so nothing but
tensors and plain values is pickled and files load with `torch.load(..., weights_only=True)`.
Compressor modules register the kinds they produce with `register_kind`. An occupancy grid
(`nerf_eval.compress.occupancy`) is stored beside the networks as packed bits and plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from nerf_eval.checkpoint import (FINE_NONE, FINE_OWN, atomic_save, build_network, load_torch_file,
                                  pair_from_checkpoint)
from nerf_eval.compress.cast import CastNetwork
from nerf_eval.compress.occupancy import OccupancyGrid
from nerf_eval.compress.quantize import (STATIC_INT8_META, WeightOnlyLinear, dynamic_int8_network, int8_packing,
                                         static_int8_network, weight_only_network)
from nerf_eval.errors import CheckpointError, first_line
from nerf_eval.model import ModelPair, NeRF, NeRFConfig, is_float_nerf
from nerf_eval.render import OCCUPANCY_KEY

FORMAT = "nerfcompress-compressed-v1"


@dataclass
class NetworkKind:
    """How to recognise, describe and rebuild one kind of (compressed) network."""

    name: str
    matches: Callable[[nn.Module], bool]
    describe: Callable[[nn.Module], dict[str, Any]]  # -> {"config": NeRFConfig dict, **settings}
    rebuild: Callable[[dict[str, Any]], nn.Module]  # settings -> module with the same structure


KINDS: dict[str, NetworkKind] = {}


def register_kind(kind: NetworkKind) -> None:
    KINDS[kind.name] = kind


def _cast_describe(net: CastNetwork) -> dict:
    return {"config": net.net.config.to_dict(), "dtype": str(net.dtype).removeprefix("torch.")}


def _cast_rebuild(settings: dict) -> nn.Module:
    dtype = getattr(torch, settings["dtype"])
    return CastNetwork(NeRF(NeRFConfig.from_dict(settings["config"])).to(dtype), dtype)


def _linear_types(net: nn.Module) -> set[type]:
    return {type(m) for m in net.modules() if not isinstance(m, (NeRF, nn.ModuleList))}


def _is_static_int8(net: nn.Module) -> bool:
    return isinstance(net, torch.fx.GraphModule) and STATIC_INT8_META in getattr(net, "meta", {})


def _static_int8_rebuild(settings: dict) -> nn.Module:
    """The same FX int8 graph, calibrated on stand-in inputs: `load_state_dict` then restores every
    weight, scale and zero point."""
    net = NeRF(NeRFConfig.from_dict(settings["config"]))
    stand_in = torch.linspace(-1.0, 1.0, 16 * (net.input_ch + net.input_ch_views)).reshape(16, -1)
    return static_int8_network(net, stand_in, settings["plan"], settings["observer"], "saved int8 model",
                               reduce_range=bool(settings.get("reduce_range", False)))


def _is_dynamic_int8(net: nn.Module) -> bool:
    return isinstance(net, NeRF) and nn.quantized.dynamic.Linear in _linear_types(net)


def _dynamic_describe(net: NeRF) -> dict:
    plan = {n: ("int8" if isinstance(m, nn.quantized.dynamic.Linear) else "fp32")
            for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.quantized.dynamic.Linear))}
    return {"config": net.config.to_dict(), "plan": plan}


def _is_weight_only(net: nn.Module) -> bool:
    return isinstance(net, NeRF) and WeightOnlyLinear in _linear_types(net)


def _weight_only_describe(net: NeRF) -> dict:
    layers = {n: m for n, m in net.named_modules() if isinstance(m, WeightOnlyLinear)}
    first = next(iter(layers.values()))
    plan = {n: ("int8" if n in layers else "fp32") for n, m in net.named_modules() if isinstance(m, (nn.Linear,
                                                                                                    WeightOnlyLinear))}
    return {"config": net.config.to_dict(), "plan": plan, "bits": first.bits, "group_size": first.group_size or None}


register_kind(NetworkKind("nerf", is_float_nerf, lambda n: {"config": n.config.to_dict()},
                          lambda s: NeRF(NeRFConfig.from_dict(s["config"]))))
register_kind(NetworkKind("cast", lambda n: isinstance(n, CastNetwork) and isinstance(n.net, NeRF)
                          and _linear_types(n.net) <= {nn.Linear},
                          _cast_describe, _cast_rebuild))
register_kind(NetworkKind("int8-static", _is_static_int8, lambda n: dict(n.meta[STATIC_INT8_META]),
                          _static_int8_rebuild))
register_kind(NetworkKind("int8-dynamic", _is_dynamic_int8, _dynamic_describe,
                          lambda s: dynamic_int8_network(NeRF(NeRFConfig.from_dict(s["config"])), s["plan"])))
register_kind(NetworkKind("weight-only", _is_weight_only, _weight_only_describe,
                          lambda s: weight_only_network(NeRF(NeRFConfig.from_dict(s["config"])), s["bits"],
                                                        s["group_size"], s["plan"])))


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
    grid = pair.meta.get(OCCUPANCY_KEY)
    if grid is not None:  # the accelerator's grid travels with the networks (packed bits and plain values)
        obj[OCCUPANCY_KEY] = grid.to_state()
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


def _rebuild_network(path: Path, name: str, rec: Any) -> nn.Module:
    where = f"{path} [{name}]"
    if not isinstance(rec, dict) or not isinstance(rec.get("settings"), dict) or "state" not in rec:
        raise CheckpointError(f"{where}: network record is not a dict with 'kind', 'settings' and 'state'")
    kind = KINDS.get(rec.get("kind")) if isinstance(rec.get("kind"), str) else None
    if kind is None:
        raise CheckpointError(f"{path}: {name} network has unknown kind {rec.get('kind')!r}")
    settings = rec["settings"]
    if not isinstance(settings.get("config"), dict):
        raise CheckpointError(f"{where}: settings have no NeRF 'config' dict")
    try:
        config = NeRFConfig.from_dict(settings["config"])
    except (TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{where}: bad NeRF config ({first_line(e)[:160]})") from None
    if kind.name == "nerf":
        return build_network(rec["state"], config, where)
    _check_finite(rec["state"], where)
    try:
        module = kind.rebuild(settings)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{where}: bad {kind.name} settings ({first_line(e)[:160]})") from None
    try:
        with int8_packing():  # int8 weights are re-packed on load: with this machine's engine, as at compression
            module.load_state_dict(rec["state"])
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise CheckpointError(f"{path}: {name} network does not match its recorded structure "
                              f"({first_line(e)[:160]})") from None
    return module.eval()


def _rebuild(path: Path, obj: Any) -> ModelPair:
    if not is_compressed_file(obj):
        raise CheckpointError(f"{path}: not a compressed model of format {FORMAT!r}")
    networks = obj.get("networks")
    if not isinstance(networks, dict) or "coarse" not in networks:
        raise CheckpointError(f"{path}: no 'networks' entry with a coarse network")
    unknown = sorted(str(n) for n in networks if n not in ("coarse", "fine"))
    if unknown:
        raise CheckpointError(f"{path}: unexpected networks {unknown} (expected coarse and fine)")
    nets = {name: _rebuild_network(path, name, rec) for name, rec in networks.items()}
    if not isinstance(obj.get("config"), dict):
        raise CheckpointError(f"{path}: no NeRF 'config' dict")
    try:
        config = NeRFConfig.from_dict(obj["config"])
    except (TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{path}: bad 'config' entry ({first_line(e)[:160]})") from None
    source = obj.get("source", {})
    meta = {"compressor": str(obj.get("compressor")), "source": source if isinstance(source, dict) else {},
            "checkpoint": str(path), "fine_network": FINE_OWN if "fine" in nets else FINE_NONE}
    if obj.get(OCCUPANCY_KEY) is not None:
        try:
            meta[OCCUPANCY_KEY] = OccupancyGrid.from_state(obj[OCCUPANCY_KEY])
        except (ValueError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"{path}: bad occupancy grid ({first_line(e)[:160]})") from None
    return ModelPair(nets["coarse"], nets.get("fine"), config, meta)


def load_any(path: str | Path) -> ModelPair:
    """A float checkpoint (ours or nerf-pytorch) or a compressed model, whichever `path` holds."""
    path = Path(path)
    obj = load_torch_file(path)
    return _rebuild(path, obj) if is_compressed_file(obj) else pair_from_checkpoint(path, obj)
