"""Training a coarse + fine NeRF on a Scene: seeded, resumable, interruptible, with tqdm progress.

Recipe for 2 CPU cores (see README, "Training recipe"): random ray batches with fewer samples than
evaluation, a centre precrop for the first steps, bf16 autocast around the MLP only (rays, encoding and
compositing stay fp32), Adam with exponential learning-rate decay. For the built-in analytic scenes only,
an optional warm start first regresses both networks onto the analytic density and colour fields.

Everything that decides the next step (weights, Adam state, step, random generator) is in the checkpoint,
so a resumed run continues exactly where the saved one stopped. The networks may train on another device
(`device="cuda"`); rays, targets and the random generator stay on the CPU, batches move per step, and the
checkpoint is always written with CPU tensors, so a run can stop on one device and resume on another.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from nerf_eval.checkpoint import atomic_save, build_network, load_torch_file, read_checkpoint
from nerf_eval.encoding import positional_encoding
from nerf_eval.errors import CheckpointError, NerfEvalError, first_line
from nerf_eval.interrupt import stop_point, stop_requests
from nerf_eval.model import ModelPair, NeRFConfig
from nerf_eval.render import RenderSettings, render_rays
from nerf_eval.scenes.scene import Scene

STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (all recorded in the checkpoint)."""

    steps: int = 5000
    batch_rays: int = 1024
    lr: float = 5e-4
    lr_final: float = 5e-5
    n_coarse: int = 32
    n_fine: int = 64
    precrop_steps: int = 300
    precrop_frac: float = 0.5
    bf16: bool = True
    seed: int = 0
    warmstart_steps: int = 0
    warmstart_points: int = 8192
    checkpoint_every_s: float = 180.0

    def lr_at(self, step: int) -> float:
        """Exponential decay from lr to lr_final over the whole run (for both phases)."""
        total = max(1, self.warmstart_steps + self.steps)
        return self.lr * (self.lr_final / self.lr) ** (min(step, total) / total)


def psnr_from_mse(mse: float) -> float:
    return -10.0 * math.log10(max(mse, 1e-12))


class Trainer:
    """Owns the model pair, optimizer, random generator and step counter of one run."""

    def __init__(self, scene: Scene, config: TrainConfig, model_config: NeRFConfig = NeRFConfig(),
                 analytic=None, device: torch.device | str = "cpu") -> None:
        self.scene = scene
        self.cfg = config
        self.analytic = analytic
        if config.warmstart_steps and analytic is None:
            raise ValueError("warm start needs an analytic scene (built-in scenes only)")
        torch.manual_seed(config.seed)
        self.device = torch.device(device)
        self.pair = ModelPair.create(model_config, seed=config.seed).to(self.device)
        params = list(self.pair.coarse.parameters()) + list(self.pair.fine.parameters())
        self.optimizer = torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.saved_step: int | None = None  # the step of the checkpoint on disk, once this run wrote one
        self.wall_time = 0.0
        self.history: list[dict] = []
        train_idx = scene.split("train")
        self.rays = scene.rays_for(train_idx)
        self.targets = scene.images[train_idx].reshape(-1, 3)
        self._crop_idx = self._precrop_indices(len(train_idx))
        self.render = RenderSettings(n_coarse=config.n_coarse, n_fine=config.n_fine, white_bkgd=scene.white_bkgd)

    def _precrop_indices(self, n_views: int) -> torch.Tensor:
        h, w = self.scene.height, self.scene.width
        dh, dw = max(1, int(h // 2 * self.cfg.precrop_frac)), max(1, int(w // 2 * self.cfg.precrop_frac))
        rows = torch.arange(h // 2 - dh, h // 2 + dh)
        cols = torch.arange(w // 2 - dw, w // 2 + dw)
        pix = (rows[:, None] * w + cols[None, :]).reshape(-1)
        return (torch.arange(n_views)[:, None] * (h * w) + pix[None, :]).reshape(-1)

    @property
    def total_steps(self) -> int:
        return self.cfg.warmstart_steps + self.cfg.steps

    def _set_lr(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.cfg.lr_at(self.step)

    def photometric_step(self) -> dict:
        """One step of the ordinary NeRF loss: MSE of fine and coarse renders against pixels."""
        if self.step - self.cfg.warmstart_steps < self.cfg.precrop_steps:
            pool = self._crop_idx
            idx = pool[torch.randint(len(pool), (self.cfg.batch_rays,), generator=self.generator)]
        else:
            idx = torch.randint(len(self.rays), (self.cfg.batch_rays,), generator=self.generator)
        out = render_rays(self.pair, self.rays[idx].to(self.device), self.render, perturb=True,
                          generator=self.generator, autocast_dtype=torch.bfloat16 if self.cfg.bf16 else None)
        target = self.targets[idx].to(self.device)
        loss_f = F.mse_loss(out["rgb"], target)
        loss = loss_f + F.mse_loss(out["rgb0"], target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach()), "psnr": psnr_from_mse(float(loss_f.detach()))}

    def warmstart_step(self) -> dict:
        """Regress both networks onto the analytic density and colour at points along training rays."""
        n = self.cfg.warmstart_points
        g = self.generator
        idx = torch.randint(len(self.rays), (n,), generator=g)
        rays = self.rays[idx]
        u = torch.rand(n, generator=g)
        t = rays.near + (rays.far - rays.near) * u
        with torch.no_grad():
            _, t_hit = self.analytic.trace(rays.origins, rays.directions)
        near_surface = torch.isfinite(t_hit) & (torch.rand(n, generator=g) < 0.5)
        t = torch.where(near_surface, t_hit + 0.08 * torch.randn(n, generator=g), t)
        pts = rays.origins + t[:, None] * rays.directions
        sigma_gt = self.analytic.density(pts)
        rgb_gt = self.analytic.color(pts, rays.viewdirs)
        sigma_gt, rgb_gt = sigma_gt.to(self.device), rgb_gt.to(self.device)
        occupied = (sigma_gt > 0).float()
        x = positional_encoding(pts, self.pair.config.multires)
        if self.pair.config.use_viewdirs:
            x = torch.cat([x, positional_encoding(rays.viewdirs, self.pair.config.multires_views)], -1)
        x = x.to(self.device)
        delta = (self.scene.far - self.scene.near) / self.cfg.n_coarse
        loss = torch.zeros((), device=self.device)
        for net in (self.pair.coarse, self.pair.fine):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
                raw = net(x)
            raw = raw.float()
            alpha = 1 - torch.exp(-F.relu(raw[:, 3]) * delta)
            alpha_gt = 1 - torch.exp(-sigma_gt * delta)
            rgb_err = ((torch.sigmoid(raw[:, :3]) - rgb_gt) ** 2).sum(-1)
            loss = loss + F.mse_loss(alpha, alpha_gt) + (rgb_err * occupied).sum() / occupied.sum().clamp(min=1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach())}

    def estimate(self, probes: int = 3) -> dict:
        """How long the rest of this run would take here: each remaining phase timed over `probes` steps.

        One untimed step per phase first (allocation, thread start), then the median of `probes` timed
        steps, times the steps left in that phase. The trainer is restored afterwards (weights, Adam
        state, random generator, step), so estimating changes nothing about the run.
        """
        saved = (copy.deepcopy(self.pair.coarse.state_dict()), copy.deepcopy(self.pair.fine.state_dict()),
                 copy.deepcopy(self.optimizer.state_dict()), self.generator.get_state(), self.step)
        left = {"warmstart": max(0, self.cfg.warmstart_steps - self.step),
                "photometric": self.total_steps - max(self.step, self.cfg.warmstart_steps)}
        steps = {"warmstart": self.warmstart_step, "photometric": self.photometric_step}
        per_step: dict[str, float] = {}
        try:
            for phase, n in left.items():
                if n <= 0:
                    continue
                if phase == "photometric":
                    self.step = max(self.step, self.cfg.warmstart_steps)
                self._set_lr()
                steps[phase]()
                times = []
                for _ in range(probes):
                    t0 = time.perf_counter()
                    steps[phase]()
                    times.append(time.perf_counter() - t0)
                per_step[phase] = sorted(times)[len(times) // 2]
        finally:
            coarse, fine, opt, rng, step = saved
            self.pair.coarse.load_state_dict(coarse)
            self.pair.fine.load_state_dict(fine)
            self.optimizer.load_state_dict(opt)
            self.generator.set_state(rng)
            self.step = step
        seconds = sum(per_step[ph] * left[ph] for ph in per_step)
        return {"steps_left": left, "per_step_s": {k: round(v, 3) for k, v in per_step.items()},
                "seconds": round(seconds, 1), "device": self.device.type, "bf16": self.cfg.bf16,
                "threads": torch.get_num_threads()}

    def model_state(self) -> dict:
        """The checkpoint proper: weights, config and training record (nerf-pytorch keys, ~4.8 MB)."""
        return {
            "format": "nerfcompress-v1",
            "global_step": self.step,
            "config": self.pair.coarse.config.to_dict(),
            "network_fn_state_dict": _on_cpu(self.pair.coarse.state_dict()),
            "network_fine_state_dict": _on_cpu(self.pair.fine.state_dict()),
            "meta": {"scene": self.scene.source or self.scene.name, "wall_time_s": self.wall_time,
                     "history": self.history, "train_config": dataclasses.asdict(self.cfg)},
        }

    def training_state(self) -> dict:
        """What resuming needs beyond the weights: Adam moments, random generator, step."""
        return {"global_step": self.step, "optimizer_state_dict": _on_cpu(self.optimizer.state_dict()),
                "rng_state": self.generator.get_state(), "train_config": dataclasses.asdict(self.cfg)}

    def save(self, path: str | Path) -> Path:
        """Write `path` (the model checkpoint) and `train_state.pt` beside it, each atomically; refuse
        (TrainingDiverged) weights that are no longer finite, keeping the last checkpoint written."""
        path = Path(path)
        if not all(bool(torch.isfinite(p).all()) for net in self.pair.networks().values() for p in net.parameters()):
            raise self._diverged(path, "its weights are no longer finite")
        atomic_save(self.training_state(), path.with_name(STATE_FILE), overwrite=True)
        out = atomic_save(self.model_state(), path, overwrite=True)
        self.saved_step = self.step
        return out

    def _diverged(self, path: Path, what: str) -> "TrainingDiverged":
        kept = (f"{path} keeps step {self.saved_step}" if self.saved_step is not None
                else "no checkpoint was written")
        return TrainingDiverged(f"{path}: training diverged at step {self.step} ({what}; the learning rate was "
                                f"{self.cfg.lr_at(self.step):g}); {kept}")

    def load(self, path: str | Path) -> None:
        """Resume from a checkpoint this trainer wrote; refuses one from another config or scene."""
        path = Path(path)
        obj = read_checkpoint(path)
        if obj.get("format") != "nerfcompress-v1" or not isinstance(obj.get("config"), dict) \
                or not isinstance(obj.get("meta"), dict):
            raise CheckpointError(f"{path}: not a checkpoint this trainer wrote (a nerf-pytorch .tar or other "
                                  "layout has no config, scene or training record to resume from); evaluate or "
                                  "compress it, or start a new run in another --out")
        state_path = path.with_name(STATE_FILE)
        if not state_path.exists():
            raise CheckpointError(f"{state_path}: missing; {path} alone holds no optimizer/random state to resume")
        state = load_torch_file(state_path, "training state")
        if not isinstance(state, dict) or not {"optimizer_state_dict", "rng_state"} <= set(state):
            raise CheckpointError(f"{state_path}: not a training-state dict (needs optimizer_state_dict and rng_state)")
        if int(state.get("global_step", -1)) != int(obj.get("global_step", -2)):
            raise CheckpointError(f"{state_path}: is at step {state.get('global_step')} but {path} is at "
                                  f"step {obj.get('global_step')}; they do not belong together")
        try:
            saved_model = NeRFConfig.from_dict(obj["config"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: bad 'config' entry ({e})") from None
        if saved_model != self.pair.coarse.config:
            raise CheckpointError(f"{path}: was trained with model config {saved_model}, not {self.pair.coarse.config}")
        saved_train = state.get("train_config", {})
        mine = dataclasses.asdict(self.cfg)
        free = ("steps", "checkpoint_every_s", "bf16")  # the schedule's length and the arithmetic may change
        differs = sorted(k for k in mine if k not in free and saved_train.get(k) != mine[k])
        if differs:
            raise CheckpointError(f"{path}: was trained with other settings ({', '.join(differs)}); "
                                  "resume with the same settings or start a new --out")
        scene = obj.get("meta", {}).get("scene")
        if scene != (self.scene.source or self.scene.name):
            raise CheckpointError(f"{path}: was trained on scene {scene!r}, not {self.scene.source or self.scene.name!r}")
        self.pair.coarse = build_network(obj["network_fn_state_dict"], saved_model, f"{path}").to(self.device).train()
        self.pair.fine = build_network(obj["network_fine_state_dict"], saved_model, f"{path}").to(self.device).train()
        params = list(self.pair.coarse.parameters()) + list(self.pair.fine.parameters())
        self.optimizer = torch.optim.Adam(params, lr=self.cfg.lr, betas=(0.9, 0.999))
        try:
            self.optimizer.load_state_dict(state["optimizer_state_dict"])
            self.generator.set_state(state["rng_state"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            first = first_line(e)
            raise CheckpointError(f"{state_path}: optimizer or random state does not fit this run ({first[:160]})") from None
        self.step = self.saved_step = int(obj["global_step"])
        self.wall_time = float(obj["meta"].get("wall_time_s", 0.0))
        self.history = list(obj["meta"].get("history", []))

    def run(self, checkpoint_path: str | Path, progress: bool = True,
            on_step: Callable[[int, dict], None] | None = None) -> ModelPair:
        """Train to `total_steps`, saving every `checkpoint_every_s` seconds, at the end, and on Ctrl-C/SIGTERM."""
        self.pair.coarse.train()
        self.pair.fine.train()
        last_save = time.monotonic()
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not progress, unit="step", dynamic_ncols=True)
        window: list[float] = []
        try:
            with stop_requests():  # Ctrl-C and SIGTERM stop between two steps
                while self.step < self.total_steps:
                    stop_point()
                    t0 = time.perf_counter()
                    self._set_lr()
                    warm = self.step < self.cfg.warmstart_steps
                    stats = self.warmstart_step() if warm else self.photometric_step()
                    self.step += 1
                    if not math.isfinite(stats["loss"]):
                        raise self._diverged(Path(checkpoint_path), f"the loss is {stats['loss']}")
                    self.wall_time += time.perf_counter() - t0
                    if not warm:
                        window.append(stats["psnr"])
                    bar.update(1)
                    if self.step % 25 == 0 or self.step == self.total_steps:
                        rec = {"step": self.step, "phase": "warmstart" if warm else "photometric",
                               "loss": round(stats["loss"], 6), "wall_time_s": round(self.wall_time, 1),
                               "lr": self.cfg.lr_at(self.step), "device": self.device.type}
                        if window:
                            rec["train_psnr"] = round(sum(window) / len(window), 3)
                            window.clear()
                        self.history.append(rec)
                        bar.set_postfix({k: rec[k] for k in ("loss", "train_psnr") if k in rec})
                    if on_step is not None:
                        on_step(self.step, stats)
                    if time.monotonic() - last_save > self.cfg.checkpoint_every_s:
                        self.save(checkpoint_path)
                        last_save = time.monotonic()
        except KeyboardInterrupt:
            bar.close()
            self.save(checkpoint_path)
            raise
        except TrainingDiverged:
            bar.close()
            raise
        bar.close()
        self.save(checkpoint_path)
        self.pair.coarse.eval()
        self.pair.fine.eval()
        return self.pair


class TrainingDiverged(NerfEvalError):
    """The loss or the weights stopped being finite (a learning rate too high for the model); the run
    stops without overwriting its last checkpoint."""


def _on_cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU, so checkpoints load anywhere."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def write_history(history: list[dict], path: str | Path) -> None:
    Path(path).write_text("\n".join(json.dumps(h) for h in history) + "\n")
