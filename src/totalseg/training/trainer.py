"""The trainer: nnU-Net's recipe on totalseg's U-Net, resumable bit for bit.

- Network: `totalseg.models.unet.build_network` of the plan, deep supervision on, He init.
- Loss: soft Dice (no background) + CE, deep-supervision weights 1, 1/2, ... (lowest dropped).
- SGD, Nesterov momentum 0.99, weight decay 3e-5, poly LR from 1e-2 (exponent 0.9, per epoch),
  gradient norm clipped at 12 (or AdamW with the same schedule: `TrainingConfig.optimizer`).
  Mixed precision: autocast fp16 + GradScaler on CUDA by default; bf16 autocast on request
  (`TrainingConfig.mixed_precision`, also on CPUs with BF16 units).
- Data: `PatchSampler` (33% foreground oversampling, augmentation without mirroring); all data
  randomness from one numpy Generator seeded with `config.seed`, the network init from
  `torch.manual_seed(config.seed)`.
- Validation: a fixed set of `n_val_patches` un-augmented patches of the validation cases
  (drawn once from the seed; 1 in 3 centred on foreground), per-class Dice from tp/fp/fn summed
  over all patches (nnU-Net's "pseudo Dice"), its mean and EMA (0.9) -> `checkpoint_best.pth`.
  Whole-volume sliding-window validation is left to evaluation after training (it costs minutes
  per case on a CPU).
- Files in the run folder: ``checkpoint_latest.pth`` (every `checkpoint_every` epochs),
  ``checkpoint_best.pth``, ``checkpoint_final.pth``, ``training_log.txt``, ``progress.png``.
  A run killed at any point resumes from ``checkpoint_latest.pth`` to the identical state.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from totalseg.errors import ConfigError, InputError
from totalseg.training.cache import CachedCase
from totalseg.training.config import AugmentationConfig, TrainingConfig, TrainingEvent
from totalseg.training.loss import DeepSupervisionLoss, DiceCELoss, deep_supervision_weights
from totalseg.training.planning import CONFIGURATION, TrainingPlan
from totalseg.training.sampler import (
    Batch,
    CaseStore,
    CTNormalizer,
    PatchSampler,
    downsample_targets,
)
from totalseg.training.state import (
    TRAINER_NAME,
    capture_rng,
    load_training_state,
    restore_rng,
    save_training_state,
)

__all__ = ["Trainer", "TrainingResult", "resolve_device"]

log = logging.getLogger(__name__)

Callback = Callable[[TrainingEvent], None]
LATEST, BEST, FINAL = "checkpoint_latest.pth", "checkpoint_best.pth", "checkpoint_final.pth"


@dataclass(frozen=True)
class TrainingResult:
    run_dir: Path
    epochs_completed: int
    checkpoint: Path
    logs: dict[str, Any]


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"Expected a CUDA device for device={name!r}, found none; use cpu.")
    return torch.device(name)


def _make_optimizer(network: torch.nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(
            network.parameters(), lr=cfg.initial_lr, weight_decay=cfg.weight_decay
        )
    return torch.optim.SGD(
        network.parameters(),
        lr=cfg.initial_lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        nesterov=True,
    )


def _empty_logs() -> dict[str, Any]:
    keys = ("train_loss", "val_loss", "val_dice_mean", "val_dice_ema", "lr", "epoch_time_s")
    return {**{k: [] for k in keys}, "val_dice": []}


class Trainer:
    """Train one plan on cached cases into `run_dir` (see the module doc)."""

    def __init__(
        self,
        plan: TrainingPlan,
        cases: Sequence[CachedCase],
        run_dir: str | Path,
        *,
        config: TrainingConfig | None = None,
        callback: Callback | None = None,
    ) -> None:
        from totalseg.models.unet import build_network, initialize_he

        self.plan, self.config = plan, config or TrainingConfig()
        self.run_dir, self.callback = Path(run_dir), callback
        self.train_cases = [c for c in cases if c.split == "train"]
        self.val_cases = [c for c in cases if c.split == "val"]
        self._n_cases = len(self.train_cases) + len(self.val_cases)
        if not self.train_cases:
            raise InputError("Expected at least one case in the training split, got none.")
        if plan.architecture.n_stages < 2:
            raise ConfigError("Expected a U-Net with >= 2 stages; the patch size is too small.")
        cfg = self.config
        self.device = resolve_device(cfg.device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.deterministic
            torch.backends.cudnn.deterministic = cfg.deterministic
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.data_rng = np.random.default_rng(cfg.seed)
        self.network = build_network(plan.architecture, 1, plan.n_classes, deep_supervision=True)
        initialize_he(self.network)
        self.network.to(self.device)
        self.optimizer = _make_optimizer(self.network, cfg)
        fp16 = self.device.type == "cuda" and cfg.mixed_precision == "auto"
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None
        self.n_outputs = plan.architecture.n_stages - 1
        weights = deep_supervision_weights(self.n_outputs)
        self.loss = DeepSupervisionLoss(DiceCELoss(batch_dice=plan.batch_dice), weights)
        self.normalizer = CTNormalizer(plan.intensity)
        self.sampler = PatchSampler(
            CaseStore(self.train_cases, max_bytes=cfg.max_cached_bytes),
            patch_size=plan.patch_size,
            batch_size=plan.batch_size,
            normalizer=self.normalizer,
            augmentation=cfg.augmentation,
            oversample_foreground=cfg.oversample_foreground,
        )
        self.epoch, self.best_ema, self._ema, self._new_best = 0, math.nan, math.nan, False
        self.logs = _empty_logs()
        self._val_batches: list[Batch] | None = None

    # -- the loop -------------------------------------------------------------------------
    def fit(self, *, resume: bool = False) -> TrainingResult:
        """Train until `config.epochs` epochs are complete; resume from the latest checkpoint."""
        latest = self.run_dir / LATEST
        if resume and latest.is_file():
            self.load(latest)
            log.info("Resumed %s at epoch %d of %d.", self.run_dir, self.epoch, self.config.epochs)
        elif resume:
            log.warning("No checkpoint in '%s' to resume from; starting a new run.", self.run_dir)
        elif latest.is_file():
            raise ConfigError(
                f"Expected a new run folder, got '{self.run_dir}' which holds a training run; "
                "pass --resume to continue it or choose another --out."
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        self._emit(
            TrainingEvent("start", self.epoch, cfg.epochs, iters_per_epoch=cfg.iters_per_epoch)
        )
        while self.epoch < cfg.epochs:
            self._run_epoch(self.epoch)
        final = self.run_dir / FINAL
        self.save(final)
        self._emit(TrainingEvent("end", self.epoch, cfg.epochs))
        return TrainingResult(self.run_dir, self.epoch, final, self.logs)

    def _run_epoch(self, epoch: int) -> None:
        cfg = self.config
        lr = cfg.initial_lr * (1 - epoch / cfg.epochs) ** cfg.poly_exponent
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.network.train()
        start, losses = time.perf_counter(), []
        strides = self.plan.architecture.strides
        for it, (x, y) in enumerate(self._batches(cfg.iters_per_epoch), start=1):
            losses.append(self._step(x, downsample_targets(y, strides, self.n_outputs)))
            self._emit(
                TrainingEvent(
                    "iteration", epoch, cfg.epochs, it, cfg.iters_per_epoch, loss=losses[-1], lr=lr
                )
            )
        elapsed = time.perf_counter() - start
        last = epoch + 1 == cfg.epochs
        val_loss, dice = (
            self.validate()
            if (epoch + 1) % cfg.val_every == 0 or last
            else (math.nan, [math.nan] * len(self.plan.classes))
        )
        self._record(epoch, float(np.mean(losses)), val_loss, dice, lr, elapsed)
        self.epoch = epoch + 1
        if self.epoch % cfg.checkpoint_every == 0 or last:
            self.save(self.run_dir / LATEST)
        if self._new_best:
            self.save(self.run_dir / BEST)
            self._new_best = False
        self._plot()
        names = list(self.plan.classes.values())
        self._emit(
            TrainingEvent(
                "epoch",
                epoch,
                cfg.epochs,
                cfg.iters_per_epoch,
                cfg.iters_per_epoch,
                loss=self.logs["train_loss"][-1],
                val_loss=val_loss,
                val_dice=dict(zip(names, dice, strict=True)),
                lr=lr,
                epoch_time_s=elapsed,
            )
        )

    def _batches(self, n: int) -> Iterator[Batch]:
        prefetch = self.config.prefetch
        if prefetch is None:
            prefetch = 2 if self.device.type == "cuda" else 0
        if prefetch <= 0:
            for _ in range(n):
                yield self.sampler.sample(self.data_rng)
            return
        yield from _prefetched(lambda: self.sampler.sample(self.data_rng), n, prefetch)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        mode = self.config.mixed_precision
        if mode == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if mode == "auto" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _step(self, x: torch.Tensor, targets: list[torch.Tensor]) -> float:
        x = x.to(self.device, non_blocking=True)
        targets = [t.to(self.device, non_blocking=True) for t in targets]
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.loss(self.network(x), targets)
        clip = self.config.grad_clip
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), clip)
            self.optimizer.step()
        return float(loss.detach().cpu())

    # -- validation -----------------------------------------------------------------------
    def validation_batches(self) -> list[Batch]:
        """The fixed validation patches (drawn once from the seed, not augmented)."""
        if self._val_batches is None:
            cases = self.val_cases
            if not cases:
                log.warning("No validation cases; pseudo Dice is computed on training cases.")
                cases = self.train_cases
            sampler = PatchSampler(
                CaseStore(cases, max_bytes=self.config.max_cached_bytes),
                patch_size=self.plan.patch_size,
                batch_size=self.plan.batch_size,
                normalizer=self.normalizer,
                augmentation=AugmentationConfig.none(),
            )
            rng = np.random.default_rng([self.config.seed, 1])
            patches = [
                sampler.sample_one(rng, foreground=i % 3 == 2)
                for i in range(self.config.n_val_patches)
            ]
            bs = self.plan.batch_size
            self._val_batches = [
                (
                    torch.stack([p[0] for p in patches[i : i + bs]])[:, None],
                    torch.stack([p[1].to(torch.int16) for p in patches[i : i + bs]])[:, None],
                )
                for i in range(0, len(patches), bs)
            ]
        return self._val_batches

    @torch.no_grad()
    def validate(self) -> tuple[float, list[float]]:
        """(mean loss, per-class Dice) over the validation patches; NaN for absent classes."""
        n_fg = len(self.plan.classes)
        tp, fp, fn = (torch.zeros(n_fg, dtype=torch.float64) for _ in range(3))
        losses = []
        self.network.eval()
        strides = self.plan.architecture.strides
        for x, y in self.validation_batches():
            x, y = x.to(self.device), y.to(self.device).long()
            with self._autocast():
                outputs = self.network(x)
                targets = downsample_targets(y, strides, self.n_outputs)
                losses.append(float(self.loss(outputs, targets).detach().cpu()))
            pred = outputs[0].argmax(1)
            truth = y[:, 0]
            for c in range(1, n_fg + 1):
                p, t = pred == c, truth == c
                tp[c - 1] += (p & t).sum().item()
                fp[c - 1] += (p & ~t).sum().item()
                fn[c - 1] += (~p & t).sum().item()
        self.network.train()
        denom = 2 * tp + fp + fn
        dice = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.nan)
        return (float(np.mean(losses)) if losses else math.nan), [float(d) for d in dice]

    # -- bookkeeping ----------------------------------------------------------------------
    def _record(
        self,
        epoch: int,
        train_loss: float,
        val_loss: float,
        dice: list[float],
        lr: float,
        elapsed_s: float,
    ) -> None:
        present = [d for d in dice if not math.isnan(d)]
        mean = float(np.mean(present)) if present else math.nan
        if not math.isnan(mean):
            self._ema = mean if math.isnan(self._ema) else 0.9 * self._ema + 0.1 * mean
            if math.isnan(self.best_ema) or self._ema > self.best_ema:
                self.best_ema, self._new_best = self._ema, True
        ema = self._ema
        for key, value in (
            ("train_loss", train_loss),
            ("val_loss", val_loss),
            ("val_dice_mean", mean),
            ("val_dice_ema", ema),
            ("lr", lr),
            ("epoch_time_s", elapsed_s),
        ):
            self.logs[key].append(float(value))
        self.logs["val_dice"].append([float(d) for d in dice])
        per_iter = elapsed_s / self.config.iters_per_epoch
        line = (
            f"epoch {epoch + 1}/{self.config.epochs}: lr {lr:.5f}, train loss {train_loss:.4f}, "
            f"val loss {val_loss:.4f}, val Dice {mean:.4f} (EMA {ema:.4f}), "
            f"{elapsed_s:.1f} s ({per_iter:.3f} s/iteration)"
        )
        log.info(line)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / "training_log.txt").open("a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def _plot(self) -> None:
        from totalseg.training.curves import plot_training_curves

        plot_training_curves(self.logs, self.run_dir / "progress.png")

    def _emit(self, event: TrainingEvent) -> None:
        if self.callback is not None:
            self.callback(event)

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        plans = self.plan.plans_json()
        return {
            "network_weights": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
            "optimizer_state": self.optimizer.state_dict(),
            "grad_scaler_state": None if self.scaler is None else self.scaler.state_dict(),
            "epoch": self.epoch,
            "current_epoch": self.epoch,
            "rng": capture_rng(self.data_rng),
            "logs": self.logs,
            "best_ema": self.best_ema,
            "config": self.config.to_dict(),
            "init_args": {
                "plans": plans,
                "configuration": CONFIGURATION,
                "fold": 0,
                "dataset_json": self.plan.dataset_json(n_training=self._n_cases),
                "device": "cpu",
            },
            "trainer_name": TRAINER_NAME,
            "inference_allowed_mirroring_axes": None,
        }

    def save(self, path: Path) -> Path:
        return save_training_state(path, self.state())

    def load_weights(self, path: str | Path) -> None:
        """Start from another run's or model folder's network weights (a warm start).

        `path` is a checkpoint (.pth) or a model folder (its ``fold_0/checkpoint_final.pth``).
        Only the weights are taken: optimizer, schedule, epoch and logs start anew. The
        checkpoint must hold this plan's network (same keys and shapes), else ConfigError.
        """
        from totalseg.models.checkpoint import load_checkpoint

        path = Path(path)
        if path.is_dir():
            path = path / "fold_0" / "checkpoint_final.pth"
        weights = load_checkpoint(path).get("network_weights")
        own = self.network.state_dict()
        if not isinstance(weights, dict):
            raise ConfigError(f"Expected network weights in '{path}', found none.")
        wrong = sorted(k for k in own if k not in weights or weights[k].shape != own[k].shape)
        if wrong:
            raise ConfigError(
                f"Expected a checkpoint of this plan's network, got '{path}' whose weights "
                f"differ in {len(wrong)} tensors (first: {wrong[0]}); check the plan "
                "(classes, features, stages) against the model it came from."
            )
        self.network.load_state_dict({k: weights[k] for k in own})

    def load(self, path: Path) -> None:
        state = load_training_state(path)
        self.network.load_state_dict(state["network_weights"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        if self.scaler is not None and state.get("grad_scaler_state"):
            self.scaler.load_state_dict(state["grad_scaler_state"])
        restore_rng(state["rng"], self.data_rng)
        self.epoch, self.best_ema = int(state["epoch"]), float(state["best_ema"])
        self.logs = {k: list(v) for k, v in state["logs"].items()}
        ema = [v for v in self.logs["val_dice_ema"] if not math.isnan(v)]
        self._ema = ema[-1] if ema else math.nan
        if int(state["config"]["epochs"]) != self.config.epochs:
            log.warning(
                "Resuming with %d epochs instead of %d: the LR schedule changes.",
                self.config.epochs,
                int(state["config"]["epochs"]),
            )


def _prefetched(make: Callable[[], Batch], n: int, depth: int) -> Iterator[Batch]:
    """`n` results of `make()` produced in order by one background thread (deterministic)."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for _ in range(n):
                if stop.is_set():
                    return
                q.put(("ok", make()))
        except BaseException as exc:  # handed to the consumer
            q.put(("error", exc))

    worker = threading.Thread(target=produce, daemon=True, name="totalseg-batches")
    worker.start()
    try:
        for _ in range(n):
            kind, item = q.get()
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.1)
        worker.join()
