"""Evaluation results cached in pytest's cache directory, keyed by everything that determines them.

A key is the sha256 of a JSON document naming the measurement spec's fingerprint (checkpoint, scene
spec, views, resolution, samples, ray batches: `nerf_eval.measure.spec`), the scene's content and the
model's own fingerprint (its serialized state and structure), so a retrained checkpoint, another scene
or view set, or a compressor that now produces other weights all miss the cache. Files are written
through `nerf_eval.atomic` (a temporary sibling, then one rename), so parallel workers and killed runs
never leave half an entry; an unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from nerf_eval.atomic import atomic_write_bytes
from nerf_eval.model import ModelPair

VERSION = "nerfcompress-eval-v2"  # v2: entries hold per-view metrics and the raw means


def digest(parts: dict) -> str:
    """sha256 of a JSON document (sorted keys), the name of a cache entry."""
    text = json.dumps({"version": VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def model_fingerprint(pair: ModelPair) -> str:
    """sha256 of the pair's serialized state plus its module structure (two models that render alike
    share it; a change of weights, dtype or wrapper changes it)."""
    nets = pair.networks()
    buf = io.BytesIO()
    torch.save({k: v.state_dict() for k, v in nets.items()}, buf)
    h = hashlib.sha256(buf.getvalue())
    for name, net in nets.items():
        h.update(f"{name}:{net!r}".encode())
    h.update(json.dumps(pair.config.to_dict(), sort_keys=True).encode())
    return h.hexdigest()


def tensors_fingerprint(*tensors: torch.Tensor | None) -> str:
    """sha256 of tensors' contents (used for a scene's images, poses and depths)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A compressed .npz of `arrays`, written atomically (readers see the old file or the whole new one)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(buf.getvalue(), path)


class EvalCache:
    """Metrics and renders by key: in memory always, on disk when a directory is given."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._memory: dict[str, tuple[dict, dict[str, np.ndarray]]] = {}

    def get(self, key: str) -> tuple[dict, dict[str, np.ndarray]] | None:
        if key in self._memory:
            return self._memory[key]
        if self.directory is None:
            return None
        path = self.directory / f"{key}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                metrics = json.loads(str(data["metrics"]))
                arrays = {k: data[k] for k in data.files if k != "metrics"}
        except Exception:  # a damaged or foreign entry (np.load and json raise many types) is a miss
            return None
        self._memory[key] = (metrics, arrays)
        return self._memory[key]

    def put(self, key: str, metrics: dict, arrays: dict[str, np.ndarray]) -> None:
        self._memory[key] = (metrics, arrays)
        if self.directory is not None:
            write_npz(self.directory / f"{key}.npz", {"metrics": np.array(json.dumps(metrics)), **arrays})
