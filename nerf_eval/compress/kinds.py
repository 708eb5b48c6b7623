"""Saved-model kinds: how `nerf_eval.compress.saved` recognises, describes and rebuilds each kind of network.

A kind lives beside its module type: the module that defines a compressed network (`cast`,
`quantize.static`, `quantize.dynamic`, `quantize.weight_only`) registers its kind here with
`register_kind`, so saving and loading need no knowledge of any compressor's internals. Importing
`nerf_eval.compress` imports every compressor module, and with them every kind.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

from torch import nn

from nerf_eval.model import NeRF, NeRFConfig, is_float_nerf


@dataclass
class NetworkKind:
    """How to recognise, describe and rebuild one kind of (compressed) network."""

    name: str
    matches: Callable[[nn.Module], bool]
    describe: Callable[[nn.Module], dict[str, Any]]  # -> {"config": NeRFConfig dict, **settings}
    rebuild: Callable[[dict[str, Any]], nn.Module]  # settings -> module with the same structure
    loading: Callable[[], ContextManager[Any]] = contextlib.nullcontext  # where its saved state is loaded
    # (int8 kinds re-pack their weights on load, with this machine's int8 engine as at compression)


KINDS: dict[str, NetworkKind] = {}


def register_kind(kind: NetworkKind) -> None:
    """Make networks of `kind` savable and loadable (a later registration of the same name replaces it)."""
    KINDS[kind.name] = kind


def layer_types(net: nn.Module) -> set[type]:
    """The module types inside a NeRF other than the NeRF and its layer lists (its kinds of layer)."""
    return {type(m) for m in net.modules() if not isinstance(m, (NeRF, nn.ModuleList))}


register_kind(NetworkKind("nerf", is_float_nerf, lambda n: {"config": n.config.to_dict()},
                          lambda s: NeRF(NeRFConfig.from_dict(s["config"]))))
