"""A short recovery fine-tune of a (pruned) float model pair on a scene's training rays.

Post-training compression results and fine-tuned ones are different claims (the second needs the
training images), so fine-tuning is a separate step, not a compressor: `finetune(pair, scene, steps)`.
It uses the training recipe's loss (MSE of the fine and coarse renders against pixels, jittered samples,
Adam) through the same `render_rays`, with bf16 autocast around the MLP only as in training. It may run
on a GPU (`device="cuda"`); the result always comes back on the CPU, where compressed models are measured.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from nerf_eval.compress.prune import check_nerf
from nerf_eval.errors import CompressorError
from nerf_eval.hardware import native_bf16
from nerf_eval.model import ModelPair
from nerf_eval.render import RenderSettings, coarse_proposal, render_rays
from nerf_eval.scenes.scene import Scene
from nerf_eval.train import psnr_from_mse


def finetune(pair: ModelPair, scene: Scene, steps: int, batch_rays: int = 1024, lr: float = 1e-4,
             lr_final: float | None = None, n_coarse: int = 32, n_fine: int = 64, bf16: bool | None = None,
             seed: int = 0, progress: bool = False, device: torch.device | str = "cpu") -> ModelPair:
    """A copy of `pair` trained `steps` more steps on random rays of the scene's 'train' split.

    The learning rate decays exponentially from `lr` to `lr_final` (default lr / 10). bf16 autocast by
    default only where this CPU (or the CUDA `device`) has native bf16 matmuls. The random stream is on the
    CPU whatever the device. Records the steps, device and last train-batch PSNR in `meta['finetune']`;
    `pair` itself is left unchanged."""
    if not isinstance(steps, int) or steps < 0:
        raise CompressorError(f"finetune: steps must be a non-negative integer, got {steps!r}")
    if batch_rays < 1 or not lr > 0:
        raise CompressorError(f"finetune: need batch_rays >= 1 and lr > 0, got {batch_rays} and {lr}")
    for name, net in pair.networks().items():
        check_nerf(net, f"finetune: {name} network")
    if coarse_proposal(pair) is not None:
        raise CompressorError("finetune: the pair's coarse pass is a baked density table (coarse-grid), which "
                              "training would leave stale; fine-tune first, then bake")
    out = ModelPair(copy.deepcopy(pair.coarse), copy.deepcopy(pair.fine), pair.config, dict(pair.meta))
    if steps == 0:
        return out.eval()
    try:
        train_idx = scene.split("train")
    except KeyError as e:
        raise CompressorError(f"finetune: {e.args[0]}") from None
    if not train_idx:
        raise CompressorError(f"finetune: scene {scene.name!r} has no training views")
    device = torch.device(device)
    if bf16 is None:
        bf16 = native_bf16(device)
    rays = scene.rays_for(train_idx)
    targets = scene.images[train_idx].reshape(-1, 3)
    settings = RenderSettings(n_coarse=n_coarse, n_fine=n_fine, white_bkgd=scene.white_bkgd)
    out.to(device)
    params = [p for net in out.networks().values() for p in net.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    final = lr / 10 if lr_final is None else lr_final
    generator = torch.Generator().manual_seed(seed)
    for net in out.networks().values():
        net.train()
    psnr = math.nan
    for step in tqdm(range(steps), desc="finetune", unit="step", disable=not progress):
        for g in optimizer.param_groups:
            g["lr"] = lr * (final / lr) ** (step / steps)
        idx = torch.randint(len(rays), (batch_rays,), generator=generator)
        res = render_rays(out, rays[idx].to(device), settings, perturb=True, generator=generator,
                          autocast_dtype=torch.bfloat16 if bf16 else None)
        target = targets[idx].to(device)
        loss_fine = F.mse_loss(res["rgb"], target)
        loss = loss_fine + F.mse_loss(res["rgb0"], target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        psnr = psnr_from_mse(float(loss_fine.detach()))
    out.meta["finetune"] = {"steps": steps, "batch_rays": batch_rays, "lr": lr, "lr_final": final, "bf16": bf16,
                            "device": device.type, "train_psnr": round(psnr, 3)}
    return out.to("cpu").eval()
