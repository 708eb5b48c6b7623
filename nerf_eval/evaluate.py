"""Render views of a scene with a model pair and measure them against the ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from nerf_eval.metrics import summarize, view_metrics
from nerf_eval.model import ModelPair
from nerf_eval.render import RenderSettings, render_chunked
from nerf_eval.scenes.scene import Scene


@dataclass
class ViewRender:
    """One rendered view: rgb (H, W, 3), depth (H, W), acc (H, W)."""

    index: int
    rgb: torch.Tensor
    depth: torch.Tensor
    acc: torch.Tensor


@dataclass
class Evaluation:
    """Per-view and mean metrics of one model pair on a set of views."""

    views: list[int]
    per_view: list[dict[str, float]]
    mean: dict[str, float]
    renders: list[ViewRender] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"views": self.views, "mean": self.mean, "per_view": self.per_view}


def render_view(pair: ModelPair, scene: Scene, index: int, settings: RenderSettings = RenderSettings(),
                progress: bool = False) -> ViewRender:
    """Render view `index` of `scene` deterministically."""
    out = render_chunked(pair, scene.rays(index), settings, progress=progress, desc=f"view {index}")
    h, w = scene.height, scene.width
    return ViewRender(index, out["rgb"].reshape(h, w, 3), out["depth"].reshape(h, w), out["acc"].reshape(h, w))


def evaluate_renders(scene: Scene, renders: list[ViewRender], with_flip: bool = True) -> Evaluation:
    """Metrics of already-rendered views against the scene's images (and depths, when it has them)."""
    per_view = []
    for r in renders:
        gt_depth = scene.depths[r.index] if scene.depths is not None and not scene.ndc else None
        per_view.append(view_metrics(r.rgb, scene.images[r.index], r.depth, gt_depth, with_flip=with_flip))
    return Evaluation([r.index for r in renders], per_view, summarize(per_view), renders)


def evaluate(pair: ModelPair, scene: Scene, views: list[int], settings: RenderSettings = RenderSettings(),
             progress: bool = True, with_flip: bool = True) -> Evaluation:
    """Render `views` (scene indices) with `pair` and measure them."""
    pair.eval()
    renders = [render_view(pair, scene, i, settings)
               for i in tqdm(views, desc="evaluate", unit="view", disable=not progress)]
    return evaluate_renders(scene, renders, with_flip)
