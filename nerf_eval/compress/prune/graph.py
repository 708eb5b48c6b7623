"""Which layers of a NeRF MLP read which units, and slicing a network down to the units it keeps.

Which layers depend on which is data (`dependency_graph`): every prunable layer ("producer") lists the
layers that read its units ("consumers") and the column offset at which they do. `pts_linears.i` feeds
`pts_linears.i+1`; after a skip layer the consumer reads `cat([input_pts, h])`, so h sits at offset
`input_ch`; the last hidden layer feeds `alpha_linear` and `feature_linear` (or `output_linear`), and
`views_linears.0` feeds `rgb_linear`. Slicing (`prune_network`) is generic over that graph, in the spirit
of Torch-Pruning's DepGraph; we do not use that library because its 1.6.1 tracer cuts the wrong columns
of the layer after a skip (it misses the `input_ch` offset of h in `cat([input_pts, h])` when
`input_pts` is a split of the network input), and the graph here follows from `NeRFConfig` alone.
`feature_linear` is not pruned: its output has no ReLU, so a small mean |a| does not mean a unit is idle
(it shifts `views_linears.0` linearly), and it is a small share of the compute.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from nerf_eval.compress.prune.repair import fill_bias, refit_consumer
from nerf_eval.errors import CompressorError
from nerf_eval.model import NeRF, NeRFConfig


@dataclass(frozen=True)
class Consumer:
    """A layer that reads a producer's units as its input columns `offset .. offset + width`."""

    layer: str
    offset: int


@dataclass(frozen=True)
class Producer:
    """A prunable layer (its output units are rows of `layer`) and the layers that read those units."""

    layer: str
    width: int
    consumers: tuple[Consumer, ...]


def dependency_graph(config: NeRFConfig, views: bool = False) -> tuple[Producer, ...]:
    """Prunable layers of a NeRF of `config` and who consumes their units, at which column offset.

    With `views`, the view branch's hidden layer `views_linears.0` is prunable too."""
    heads = ("alpha_linear", "feature_linear") if config.use_viewdirs else ("output_linear",)
    out = []
    for i, w in enumerate(config.widths):
        offset = config.input_ch if i in config.skips else 0
        readers = (f"pts_linears.{i + 1}",) if i + 1 < config.depth else heads
        out.append(Producer(f"pts_linears.{i}", w, tuple(Consumer(r, offset) for r in readers)))
    if views and config.use_viewdirs:
        out.append(Producer("views_linears.0", config.view_width, (Consumer("rgb_linear", 0),)))
    return tuple(out)


def check_nerf(net: nn.Module, where: str) -> NeRF:
    """`net` itself if it is a float NeRF MLP whose layers match its config, else a CompressorError."""
    if not isinstance(net, NeRF):
        raise CompressorError(f"{where}: {type(net).__name__} is not a NeRF MLP (prune before quantizing or casting)")
    for i, layer in enumerate(net.pts_linears):
        if not isinstance(layer, nn.Linear) or layer.out_features != net.config.widths[i] \
                or layer.in_features != net.config.layer_in_features(i):
            raise CompressorError(f"{where}: pts_linears.{i} does not match its NeRF config {net.config}")
    if len(net.pts_linears) != net.config.depth:
        raise CompressorError(f"{where}: has {len(net.pts_linears)} pts_linears, config says {net.config.depth}")
    for name, p in net.named_parameters():
        if p.dtype != torch.float32:
            raise CompressorError(f"{where}: {name} is {p.dtype}, not float32 (prune before casting)")
    return net



def consumer_columns(net: NeRF, prod: Producer) -> torch.Tensor:
    """The producer's columns in all its consumers, stacked: (sum of consumer out-features, width)."""
    modules = dict(net.named_modules())
    return torch.cat([modules[c.layer].weight.detach()[:, c.offset:c.offset + prod.width] for c in prod.consumers])


def prune_network(net: NeRF, keep: Mapping[str, torch.Tensor], fill: Mapping[str, torch.Tensor] | None = None,
                  moments: Mapping[str, torch.Tensor] | None = None) -> NeRF:
    """A new NeRF holding only the units `keep[layer]` (indices) of each listed prunable layer.

    Each producer loses the rows of removed units, and every consumer the matching columns (at the
    consumer's offset). Layers not in `keep` stay whole; `net` is not modified. Optional repair of the
    consumers, per layer: `fill[layer]` (one value per unit, e.g. its mean activation on calibration data)
    replaces each removed unit by that constant, folded into the consumers' biases; `moments[layer]`
    (see `refit_consumer`) refits the consumers by least squares instead."""
    check_nerf(net, "prune_network")
    graph = {p.layer: p for p in dependency_graph(net.config, views=True)}
    unknown = sorted(set(keep) - set(graph))
    if unknown:
        raise CompressorError(f"prune_network: {unknown[0]} is not a prunable layer; choose from {', '.join(graph)}")
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    column_masks: dict[str, torch.Tensor] = {}
    widths: dict[str, int] = {}
    for layer, idx in keep.items():
        prod = graph[layer]
        idx = torch.as_tensor(idx).long().reshape(-1)
        if idx.numel() == 0 or idx.min() < 0 or idx.max() >= prod.width or idx.unique().numel() != idx.numel():
            raise CompressorError(f"{layer}: kept units must be 1..{prod.width} distinct indices in [0, {prod.width})")
        idx = torch.sort(idx).values
        state[f"{layer}.weight"] = state[f"{layer}.weight"][idx]
        state[f"{layer}.bias"] = state[f"{layer}.bias"][idx]
        removed = torch.ones(prod.width, dtype=torch.bool)
        removed[idx] = False
        constant = None if fill is None or layer not in fill else torch.as_tensor(fill[layer]).float().reshape(-1)
        if constant is not None and constant.numel() != prod.width:
            raise CompressorError(f"{layer}: fill has {constant.numel()} values for {prod.width} units")
        moment = None if moments is None or layer not in moments else torch.as_tensor(moments[layer])
        if moment is not None and tuple(moment.shape) != (prod.width + 1,) * 2:
            raise CompressorError(f"{layer}: moment has shape {tuple(moment.shape)}, expected "
                                  f"{(prod.width + 1,) * 2}")
        for c in prod.consumers:
            w, b = state[f"{c.layer}.weight"], state[f"{c.layer}.bias"]
            cols = slice(c.offset, c.offset + prod.width)
            if moment is not None and removed.any():
                new_cols, state[f"{c.layer}.bias"] = refit_consumer(w[:, cols], b, idx, moment)
                w[:, c.offset + idx] = new_cols
            elif constant is not None and removed.any():
                state[f"{c.layer}.bias"] = fill_bias(w[:, cols], b, removed, constant)
            mask = column_masks.setdefault(c.layer, torch.ones(state[f"{c.layer}.weight"].shape[1], dtype=torch.bool))
            mask[c.offset:c.offset + prod.width] &= ~removed
        widths[layer] = idx.numel()
    for layer, mask in column_masks.items():
        state[f"{layer}.weight"] = state[f"{layer}.weight"][:, mask]
    cfg = net.config
    hidden = tuple(widths.get(f"pts_linears.{i}", w) for i, w in enumerate(cfg.widths))
    new_cfg = dataclasses.replace(cfg, hidden_widths=hidden if hidden != cfg.widths else cfg.hidden_widths,
                                  view_width=widths.get("views_linears.0", cfg.view_width))
    out = NeRF(new_cfg)
    out.load_state_dict({k: v.contiguous() for k, v in state.items()})
    return out.train(net.training)

