"""Training configuration and the progress events the trainer reports (torch-free)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from totalseg.errors import ConfigError

__all__ = ["AugmentationConfig", "EventKind", "TrainingConfig", "TrainingEvent"]

EventKind = Literal["start", "iteration", "epoch", "end"]


@dataclass(frozen=True)
class AugmentationConfig:
    """Probabilities and ranges (nnU-Net v2 defaults). There is deliberately no mirroring."""

    p_rotation: float = 0.2
    rotation_deg: float = 30.0
    p_scaling: float = 0.2
    scaling: tuple[float, float] = (0.7, 1.4)
    p_elastic: float = 0.0
    elastic_magnitude: float = 0.05  # max displacement as a fraction of the patch edge
    p_noise: float = 0.1
    noise_variance: tuple[float, float] = (0.0, 0.1)
    p_blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_brightness: float = 0.15
    brightness: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)
    p_low_resolution: float = 0.25
    low_resolution_zoom: tuple[float, float] = (0.5, 1.0)
    p_gamma_inverted: float = 0.1
    p_gamma: float = 0.3
    gamma: tuple[float, float] = (0.7, 1.5)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AugmentationConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ConfigError(f"Unknown augmentation keys {unknown}; known: {sorted(names)}.")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**values)

    @classmethod
    def none(cls) -> AugmentationConfig:
        """No augmentation at all (validation, tests)."""
        probabilities = [f.name for f in dataclasses.fields(cls) if f.name.startswith("p_")]
        values: dict[str, Any] = dict.fromkeys(probabilities, 0.0)
        return cls(**values)


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation schedule and run options; nnU-Net v2 defaults unless noted.

    One epoch is `iters_per_epoch` optimizer steps. `optimizer` is nnU-Net's SGD (Nesterov,
    `momentum`) or AdamW (betas 0.9/0.999, `weight_decay`), which learns much faster in the first
    few thousand steps and suits short CPU runs. The learning rate follows nnU-Net's poly schedule,
    set at the start of each epoch: ``lr = initial_lr * (1 - epoch / epochs) ** poly_exponent``.
    Validation every `val_every` epochs on a fixed set of `n_val_patches` patches of the
    validation cases (drawn once from the seed, foreground-oversampled, not augmented).
    """

    epochs: int = 1000
    iters_per_epoch: int = 250
    optimizer: Literal["sgd", "adamw"] = "sgd"  # adamw: not nnU-Net's; converges faster early
    initial_lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99
    poly_exponent: float = 0.9
    grad_clip: float = 12.0
    oversample_foreground: float = 0.33
    checkpoint_every: int = 1
    n_val_patches: int = 16
    val_every: int = 1
    seed: int = 0
    device: str = "auto"
    # autocast: "auto" = fp16 (+ GradScaler) on CUDA, fp32 on CPU; "bf16" also on CPU (AVX-512
    # BF16 / AMX hardware), "off" = fp32 everywhere
    mixed_precision: Literal["auto", "off", "bf16"] = "auto"
    num_threads: int | None = None
    prefetch: int | None = None  # batches prepared in a background thread; None: 2 on CUDA, else 0
    max_cached_bytes: float = 4e9
    deterministic: bool = True
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)

    def __post_init__(self) -> None:
        positive = ("epochs", "iters_per_epoch", "checkpoint_every", "val_every")
        bad = [f"{n}={getattr(self, n)}" for n in positive if int(getattr(self, n)) < 1]
        if self.initial_lr <= 0 or not math.isfinite(self.initial_lr):
            bad.append(f"initial_lr={self.initial_lr}")
        if self.mixed_precision not in ("auto", "off", "bf16"):
            bad.append(f"mixed_precision={self.mixed_precision!r} (use auto, off or bf16)")
        if self.optimizer not in ("sgd", "adamw"):
            bad.append(f"optimizer={self.optimizer!r} (use sgd or adamw)")
        if not 0.0 <= self.oversample_foreground <= 1.0:
            bad.append(f"oversample_foreground={self.oversample_foreground}")
        if self.n_val_patches < 0:
            bad.append(f"n_val_patches={self.n_val_patches}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            bad.append(f"device={self.device!r} (use auto, cpu, cuda or cuda:N)")
        if bad:
            raise ConfigError(f"Invalid training configuration: {', '.join(bad)}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainingConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ConfigError(
                f"Unknown training configuration keys {unknown}; known: {sorted(names)}."
            )
        values = dict(raw)
        if isinstance(values.get("augmentation"), Mapping):
            values["augmentation"] = AugmentationConfig.from_dict(values["augmentation"])
        return cls(**values)


@dataclass(frozen=True)
class TrainingEvent:
    """A progress report: after each iteration, after each epoch, at start and end."""

    kind: EventKind
    epoch: int  # 0-based epoch the event belongs to
    n_epochs: int
    iteration: int = 0  # 1-based within the epoch, for "iteration"
    iters_per_epoch: int = 0
    loss: float = math.nan  # this iteration's loss, or the epoch's mean train loss
    val_loss: float = math.nan
    val_dice: Mapping[str, float] = field(default_factory=dict)  # per class name (epoch only)
    lr: float = math.nan
    epoch_time_s: float = math.nan
