"""The vanilla NeRF MLP with nerf-pytorch's parameter names, and the coarse/fine model pair.

Names match nerf-pytorch (`pts_linears.N`, `views_linears.0`, `feature_linear`, `alpha_linear`,
`rgb_linear`, or `output_linear` without view directions), so its checkpoints load unchanged.
Hidden widths may differ per layer, which is how structured pruning keeps the same class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from nerf_eval.encoding import encoded_dim
from nerf_eval.errors import describe
from nerf_eval.hardware import copy_module
from nerf_eval.kernels import linear


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class NeRFConfig:
    """Sizes of one NeRF MLP. The defaults are the vanilla NeRF (595,844 parameters)."""

    depth: int = 8
    width: int = 256
    skips: tuple[int, ...] = (4,)
    multires: int = 10
    multires_views: int = 4
    use_viewdirs: bool = True
    view_width: int = 128
    hidden_widths: tuple[int, ...] | None = None
    feature_width: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "skips", tuple(int(s) for s in self.skips))
        if self.hidden_widths is not None:
            object.__setattr__(self, "hidden_widths", tuple(int(w) for w in self.hidden_widths))
            if len(self.hidden_widths) != self.depth:
                raise ValueError(f"hidden_widths has {len(self.hidden_widths)} entries for depth {self.depth}")
        if self.depth < 1 or self.width < 1 or self.view_width < 1:
            raise ValueError(f"depth, width and view_width must be positive: {self}")
        if any(w < 1 for w in self.widths):
            raise ValueError(f"every hidden layer needs at least one unit: {self.widths}")

    @property
    def widths(self) -> tuple[int, ...]:
        """Output width of each hidden layer `pts_linears.i`."""
        return self.hidden_widths if self.hidden_widths is not None else (self.width,) * self.depth

    @property
    def features(self) -> int:
        """Width of `feature_linear` (the 256-d feature fed to the view branch)."""
        return self.feature_width if self.feature_width is not None else self.width

    @property
    def input_ch(self) -> int:
        return encoded_dim(3, self.multires)

    @property
    def input_ch_views(self) -> int:
        return encoded_dim(3, self.multires_views) if self.use_viewdirs else 0

    def layer_in_features(self, i: int) -> int:
        """In-features of `pts_linears.i` (the skip concatenation included)."""
        if i == 0:
            return self.input_ch
        return self.widths[i - 1] + (self.input_ch if (i - 1) in self.skips else 0)

    @property
    def trunk_out_features(self) -> int:
        """Features leaving the trunk (into the density/feature heads)."""
        return self.widths[-1] + (self.input_ch if (self.depth - 1) in self.skips else 0)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["skips"] = list(self.skips)
        if self.hidden_widths is not None:
            d["hidden_widths"] = list(self.hidden_widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NeRFConfig":
        """The config `to_dict` wrote; ValueError naming the key for anything else (a file's entry may hold
        any type: an int field must be an int, not a bool, a float or a tensor)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown NeRF config keys: {sorted(unknown)}")
        d = dict(d)
        for key, value in d.items():
            if key == "use_viewdirs":
                ok, expected = isinstance(value, bool), "true or false"
            elif key in ("skips", "hidden_widths"):
                ok = isinstance(value, (list, tuple)) and all(_is_int(v) for v in value)
                ok, expected = ok or (key == "hidden_widths" and value is None), "a list of integers"
            else:
                ok, expected = _is_int(value) or (key == "feature_width" and value is None), "an integer"
            if not ok:
                raise ValueError(f"config {key!r} is {describe(value)}, expected {expected}")
        if "skips" in d:
            d["skips"] = tuple(d["skips"])
        if d.get("hidden_widths") is not None:
            d["hidden_widths"] = tuple(d["hidden_widths"])
        return cls(**d)


class NeRF(nn.Module):
    """NeRF MLP: maps [encoded xyz, encoded view dir] to raw (r, g, b, sigma), as nerf-pytorch does."""

    def __init__(self, config: NeRFConfig = NeRFConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        self.input_ch = c.input_ch
        self.input_ch_views = c.input_ch_views
        self.skips = c.skips
        self.use_viewdirs = c.use_viewdirs
        self.pts_linears = nn.ModuleList(
            [nn.Linear(c.layer_in_features(i), w) for i, w in enumerate(c.widths)]
        )
        if c.use_viewdirs:
            self.views_linears = nn.ModuleList([nn.Linear(c.features + c.input_ch_views, c.view_width)])
            self.feature_linear = nn.Linear(c.trunk_out_features, c.features)
            self.alpha_linear = nn.Linear(c.trunk_out_features, 1)
            self.rgb_linear = nn.Linear(c.view_width, 3)
        else:
            self.output_linear = nn.Linear(c.trunk_out_features, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input_pts, input_views = torch.split(x, [self.input_ch, self.input_ch_views], dim=-1)
        h = input_pts
        for i, layer in enumerate(self.pts_linears):
            h = linear(layer, h, relu=True)
            if i in self.skips:
                h = torch.cat([input_pts, h], dim=-1)
        if not self.use_viewdirs:
            return linear(self.output_linear, h)
        alpha = linear(self.alpha_linear, h)
        feature = linear(self.feature_linear, h)
        h = torch.cat([feature, input_views], dim=-1)
        for layer in self.views_linears:
            h = linear(layer, h, relu=True)
        rgb = linear(self.rgb_linear, h)
        return torch.cat([rgb, alpha], dim=-1)


def is_float_nerf(net: nn.Module) -> bool:
    """True for a plain fp32 NeRF: only nn.Linear layers (pruned widths allowed), nothing quantized or cast."""
    return (isinstance(net, NeRF)
            and all(type(m) is nn.Linear for m in net.modules() if not isinstance(m, (NeRF, nn.ModuleList)))
            and all(p.dtype == torch.float32 for p in net.parameters()))


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (packed int8 weights of quantized modules are counted by `size.py`)."""
    return sum(p.numel() for p in module.parameters())


@dataclass
class ModelPair:
    """The coarse and fine networks that render one scene.

    `config` describes the encoding and inputs shared by both (the float model's config); the networks
    themselves may be compressed or wrapped modules, as long as they map fp32 encoded inputs to fp32 raw
    outputs of shape (N, 4). `fine` may be None (coarse-only rendering).
    """

    coarse: nn.Module
    fine: nn.Module | None
    config: NeRFConfig = field(default_factory=NeRFConfig)
    meta: dict = field(default_factory=dict)

    def networks(self) -> dict[str, nn.Module]:
        nets = {"coarse": self.coarse}
        if self.fine is not None:
            nets["fine"] = self.fine
        return nets

    def copy_with(self, **meta: object) -> "ModelPair":
        """A copy with its networks deep-copied (so nothing downstream shares them; int8 weights stay packed
        for this machine's engine, `nerf_eval.hardware.copy_module`) and `meta` entries set or replaced: how an
        accelerator attaches what it renders with (a grid, sample caps)."""
        fine = copy_module(self.fine) if self.fine is not None else None
        return ModelPair(copy_module(self.coarse), fine, self.config, {**self.meta, **meta})

    def eval(self) -> "ModelPair":
        for net in self.networks().values():
            net.eval()
        return self

    @property
    def device(self) -> torch.device:
        """Where the coarse network's weights live (the CPU for modules without any, e.g. some int8 ones)."""
        for t in list(self.coarse.parameters()) + list(self.coarse.buffers()):
            return t.device
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> "ModelPair":
        """Move both networks to `device` in place (float models; compressed ones run where they were made)."""
        for net in self.networks().values():
            net.to(device)
        return self

    @classmethod
    def create(cls, config: NeRFConfig = NeRFConfig(), fine_config: NeRFConfig | None = None,
               seed: int | None = 0, with_fine: bool = True) -> "ModelPair":
        """A freshly initialised pair (seeded, so two calls give the same weights)."""
        if seed is not None:
            torch.manual_seed(seed)
        coarse = NeRF(config)
        fine = NeRF(fine_config or config) if with_fine else None
        return cls(coarse, fine, config)
