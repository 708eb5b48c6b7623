"""Checkpoints: this project's format and nerf-pytorch's `.tar` layout, validated on load.

Both are a dict with `global_step`, `network_fn_state_dict` (coarse) and `network_fine_state_dict`
(fine), as nerf-pytorch writes; ours adds `format`, `config` (and `fine_config` when it differs),
`meta` (scene, training record) and the training state needed to resume exactly.
Loading always uses `torch.load(..., weights_only=True)`: a file holding pickled code is refused.
"""

from __future__ import annotations

import copy
import hashlib
import io
import pickle
import warnings
import re
from pathlib import Path
from typing import Any

import torch

from nerf_eval.encoding import encoded_dim
from nerf_eval.errors import CheckpointError, describe, first_line
from nerf_eval.model import ModelPair, NeRF, NeRFConfig

FORMAT = "nerfcompress-v1"


def file_hash(path: str | Path) -> str:
    """sha256 of a file (the key by which cached results and model cards name a checkpoint)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def serialize(obj: Any) -> bytes:
    """`torch.save` into memory. The zip members are always named `archive/...` (torch names them
    after the file otherwise, and a temporary file's name is random), so identical content gives
    identical bytes and the same sha256, which keys caches and model cards."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def atomic_save(obj: Any, path: str | Path, overwrite: bool = False) -> Path:
    """torch.save to `path` through a temporary file, so a killed process never leaves half a file.

    Refuses to replace an existing file unless `overwrite` (nothing a user saved is replaced silently),
    and a directory always. The bytes depend on the content only (`serialize`); the temporary is
    removed even when SIGINT/SIGTERM arrives while it exists (`nerf_eval.atomic.atomic_write_bytes`).
    """
    from nerf_eval.atomic import atomic_write_bytes

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory; need a file name to save to")
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path}: file exists; refusing to overwrite it (use --force / overwrite=True)")
    data = serialize(obj)
    try:
        return atomic_write_bytes(data, path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write ({e.strerror or type(e).__name__})") from None


def save_checkpoint(path: str | Path, pair: ModelPair, global_step: int = 0, meta: dict | None = None,
                    extra: dict | None = None, overwrite: bool = False) -> Path:
    """Write a float model pair in this project's format (readable by nerf-pytorch as well)."""
    for name, net in pair.networks().items():
        if not isinstance(net, NeRF):
            raise CheckpointError(f"{path}: the {name} network is {type(net).__name__}, not a float NeRF; "
                                  "save compressed models with nerf_eval.compress.save_compressed")
    obj: dict[str, Any] = {
        "format": FORMAT,
        "global_step": int(global_step),
        "config": pair.coarse.config.to_dict(),
        "network_fn_state_dict": pair.coarse.state_dict(),
        "network_fine_state_dict": pair.fine.state_dict() if pair.fine is not None else None,
        "meta": dict(meta or pair.meta),
    }
    if pair.fine is not None and pair.fine.config != pair.coarse.config:
        obj["fine_config"] = pair.fine.config.to_dict()
    obj.update(extra or {})
    return atomic_save(obj, path, overwrite=overwrite)


def _unpickler_reason(message: str) -> str:
    """The informative line of torch's weights-only refusal (the text around it is generic advice)."""
    m = re.search(r"WeightsUnpickler error:(.*)", message, flags=re.S)
    text = m.group(1) if m else message
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "unpickling failed")
    return first.split(" Please use")[0][:200]


def load_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """`torch.load(path, weights_only=True)` with a one-line CheckpointError for every failure."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such {what} file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a {what} file")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")  # torch's own qtensor loader
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickler_reason(str(e))
        if reason.startswith("Unsupported global"):
            raise CheckpointError(f"{path}: refused to load (weights_only=True): it holds pickled code "
                                  f"({reason})") from None
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({reason})") from None
    except Exception as e:  # torch's unpickler raises many types for damaged bytes (KeyError from its memo, ...)
        first = first_line(e)
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({first[:200]})") from None
    return obj


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict safely (weights only), with one-line errors for every failure."""
    return _nerf_dict(path, load_torch_file(path))


def _nerf_dict(path: str | Path, obj: Any) -> dict:
    if not isinstance(obj, dict) or "network_fn_state_dict" not in obj:
        raise CheckpointError(f"{path}: not a NeRF checkpoint (no 'network_fn_state_dict' entry)")
    return obj


def infer_config(state: dict[str, torch.Tensor], where: str) -> NeRFConfig:
    """Recover the NeRF sizes from a nerf-pytorch state dict (depth, widths, skips, encodings)."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{where}: not a state dict of named tensors ({type(state).__name__})")
    not_matrix = [k for k, v in state.items() if k.endswith(".weight") and v.ndim != 2]
    if not_matrix:
        raise CheckpointError(f"{where}: {not_matrix[0]} is not a 2-D weight matrix")
    idx = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"pts_linears\.(\d+)\.weight", k)))
    if not idx or idx != list(range(len(idx))):
        raise CheckpointError(f"{where}: no consecutive pts_linears.N.weight entries; not a NeRF MLP")
    w0 = state["pts_linears.0.weight"]
    input_ch = w0.shape[1]
    multires = (input_ch // 3 - 1) // 2
    if encoded_dim(3, multires) != input_ch:
        raise CheckpointError(f"{where}: pts_linears.0 takes {input_ch} inputs, not 3*(1+2L) for any L")
    widths = [state[f"pts_linears.{i}.weight"].shape[0] for i in idx]
    skips = []
    for i in idx[1:]:
        extra = state[f"pts_linears.{i}.weight"].shape[1] - widths[i - 1]
        if extra == input_ch:
            skips.append(i - 1)
        elif extra != 0:
            raise CheckpointError(f"{where}: pts_linears.{i} takes {extra + widths[i - 1]} inputs, "
                                  f"expected {widths[i - 1]} or {widths[i - 1] + input_ch}")
    use_viewdirs = "views_linears.0.weight" in state
    heads = ("feature_linear.weight", "alpha_linear.weight") if use_viewdirs else ("output_linear.weight",)
    if any(h not in state for h in heads):
        raise CheckpointError(f"{where}: missing {[h for h in heads if h not in state]}; not a NeRF MLP")
    if state[heads[-1]].shape[1] == widths[-1] + input_ch:
        skips.append(len(idx) - 1)  # skip concatenation after the last layer feeds the heads
    kw: dict[str, Any] = dict(depth=len(idx), width=widths[0], skips=tuple(skips), multires=multires,
                              use_viewdirs=use_viewdirs)
    if len(set(widths)) > 1:
        kw["hidden_widths"] = tuple(widths)
    if use_viewdirs:
        feat = state["feature_linear.weight"].shape[0]
        vw = state["views_linears.0.weight"]
        ch_views = vw.shape[1] - feat
        multires_views = (ch_views // 3 - 1) // 2
        if encoded_dim(3, multires_views) != ch_views:
            raise CheckpointError(f"{where}: views_linears.0 takes {vw.shape[1]} inputs; cannot infer the "
                                  "view-direction encoding")
        kw.update(multires_views=multires_views, view_width=vw.shape[0])
        if feat != widths[0]:
            kw["feature_width"] = feat
    return NeRFConfig(**kw)


def _expected_state(config: NeRFConfig, where: str) -> dict[str, torch.Tensor]:
    """Parameter shapes of a NeRF of `config`, built on the meta device (no memory for the weights, so
    a corrupt config asking for a huge network is refused by shape, not by running out of memory)."""
    try:
        with torch.device("meta"):
            return NeRF(config).state_dict()
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        first = first_line(e)
        raise CheckpointError(f"{where}: config {config} does not describe a buildable NeRF ({first[:120]})") from None


def build_network(state: dict, config: NeRFConfig, where: str) -> NeRF:
    """A NeRF of `config` holding `state`, after checking names, types, shapes and finiteness."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: state dict is {type(state).__name__}, not a dict")
    expected = _expected_state(config, where)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected), key=str)
    if missing or unexpected:
        raise CheckpointError(f"{where}: layout does not match the NeRF config "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, v in expected.items():
        t = state[k]
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{where}: {k} is not a tensor")
        if tuple(t.shape) != tuple(v.shape):
            raise CheckpointError(f"{where}: {k} has shape {tuple(t.shape)}, expected {tuple(v.shape)}")
        if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                      torch.uint8)) or t.is_quantized:
            raise CheckpointError(f"{where}: {k} has dtype {t.dtype}, not real numbers")
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{where}: {k} holds NaN or inf weights")
    net = NeRF(config)
    net.load_state_dict({k: state[k].float() for k in expected})
    return net.eval()


def load_checkpoint(path: str | Path) -> ModelPair:
    """Load a float model pair from this project's format or a nerf-pytorch `.tar`."""
    return pair_from_checkpoint(path, load_torch_file(path))


def _config_entry(obj: dict, key: str, path: str | Path) -> NeRFConfig:
    entry = obj[key]
    if not isinstance(entry, dict):
        raise CheckpointError(f"{path}: bad '{key}' entry (a {type(entry).__name__}, not a dict of NeRF sizes)")
    try:
        return NeRFConfig.from_dict(entry)
    except (TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{path}: bad '{key}' entry ({first_line(e)[:160]})") from None


# How a pair's fine samples are rendered (`pair.meta["fine_network"]`, reported by `evaluate`):
FINE_OWN = "fine"  # by the checkpoint's own fine network
FINE_FROM_COARSE = "coarse"  # by the coarse network, as nerf-pytorch does when there is no fine one
FINE_NONE = "none"  # not at all: a coarse-only pair this project saved on purpose


def pair_from_checkpoint(path: str | Path, obj: Any) -> ModelPair:
    """Validate an already loaded checkpoint object and build its float pair (`path` names it in errors).

    A checkpoint without fine weights follows nerf-pytorch's `render_rays` (`run_fn = network_fn if
    network_fine is None`): the fine samples go through the coarse network, so the pair gets a copy of
    the coarse network as its fine one and `meta["fine_network"] == "coarse"` says so. The one exception
    is a coarse-only pair saved by `save_checkpoint` (our `format`, `network_fine_state_dict: None`),
    which stays coarse-only (`"none"`).
    """
    obj = _nerf_dict(path, obj)
    if obj.get("format", FORMAT) != FORMAT:
        raise CheckpointError(f"{path}: format {describe(obj.get('format'))} is not a float checkpoint "
                              f"(expected {FORMAT!r}); load compressed models with nerf_eval.compress.load_compressed")
    fn_state = obj["network_fn_state_dict"]
    config = _config_entry(obj, "config", path) if "config" in obj else infer_config(fn_state, f"{path}")
    coarse = build_network(fn_state, config, f"{path} [network_fn_state_dict]")
    fine_state = obj.get("network_fine_state_dict")
    if fine_state is not None:
        if "fine_config" in obj:
            fine_config = _config_entry(obj, "fine_config", path)
        elif "config" in obj:
            fine_config = config
        else:
            fine_config = infer_config(fine_state, f"{path} [network_fine_state_dict]")
        fine, how = build_network(fine_state, fine_config, f"{path} [network_fine_state_dict]"), FINE_OWN
    elif "format" in obj and "network_fine_state_dict" in obj:
        fine, how = None, FINE_NONE
    else:
        fine, how = copy.deepcopy(coarse), FINE_FROM_COARSE
    meta = obj.get("meta")
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: bad 'meta' entry (a {type(meta).__name__}, not a dict)")
    meta = dict(meta)
    step = obj.get("global_step", 0)
    integer_tensor = isinstance(step, torch.Tensor) and not (step.is_floating_point() or step.is_complex()
                                                             or step.dtype == torch.bool)
    if integer_tensor and step.numel() == 1:
        step = int(step)
    if isinstance(step, bool) or not isinstance(step, int):
        raise CheckpointError(f"{path}: bad 'global_step' entry ({describe(step)}, not an integer)")
    meta.setdefault("global_step", step)
    meta["checkpoint"] = str(path)
    meta["fine_network"] = how
    return ModelPair(coarse, fine, config, meta)
