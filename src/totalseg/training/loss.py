"""nnU-Net's training loss: soft Dice + cross-entropy, wrapped for deep supervision.

- Soft Dice is nnU-Net's ``MemoryEfficientSoftDiceLoss``: softmax, per-class
  ``(2 tp + smooth) / (sum_gt + sum_pred + smooth)`` (clamped at 1e-8) over the spatial axes
  (and the batch with `batch_dice`), background excluded (``do_bg=False``), mean over classes,
  negated; smooth 1e-5.
- Cross-entropy on the logits, weight 1 each.
- Deep supervision: weights 1, 1/2, 1/4, ... for the outputs from highest to lowest resolution,
  the lowest one set to 0, normalised to sum 1 (nnU-Net's ``_build_loss``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["DeepSupervisionLoss", "DiceCELoss", "SoftDiceLoss", "deep_supervision_weights"]


class SoftDiceLoss(nn.Module):
    """nnU-Net's MemoryEfficientSoftDiceLoss on logits (softmax applied here)."""

    def __init__(self, *, batch_dice: bool = False, do_bg: bool = False, smooth: float = 1e-5):
        super().__init__()
        self.batch_dice, self.do_bg, self.smooth = batch_dice, do_bg, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`logits` (B, C, ...), `target` (B, 1, ...) integer labels."""
        x = torch.softmax(logits, 1)
        axes = tuple(range(2, x.ndim))
        with torch.no_grad():
            onehot = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
            onehot.scatter_(1, target.long(), 1)
            if not self.do_bg:
                onehot = onehot[:, 1:]
            sum_gt = onehot.sum(axes, dtype=torch.float32)
        if not self.do_bg:
            x = x[:, 1:]
        intersect = (x * onehot).sum(axes, dtype=torch.float32)
        sum_pred = x.sum(axes, dtype=torch.float32)
        if self.batch_dice:
            intersect, sum_pred, sum_gt = intersect.sum(0), sum_pred.sum(0), sum_gt.sum(0)
        dc = (2 * intersect + self.smooth) / (sum_gt + sum_pred + self.smooth).clamp_min(1e-8)
        return -dc.mean()


class DiceCELoss(nn.Module):
    """Soft Dice (no background) + cross-entropy, weight 1 each (nnU-Net's DC_and_CE_loss)."""

    def __init__(self, *, batch_dice: bool = False, smooth: float = 1e-5) -> None:
        super().__init__()
        self.dice = SoftDiceLoss(batch_dice=batch_dice, do_bg=False, smooth=smooth)
        self.ce = nn.CrossEntropyLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, target) + self.ce(logits, target[:, 0].long())


def deep_supervision_weights(n_outputs: int) -> list[float]:
    """1, 1/2, 1/4, ... with the lowest-resolution output dropped (0), normalised to sum 1."""
    if n_outputs < 1:
        raise ValueError(f"Expected at least one output, got {n_outputs}.")
    w = np.array([1 / (2**i) for i in range(n_outputs)])
    if n_outputs > 1:
        w[-1] = 0
    return [float(v) for v in w / w.sum()]


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of a loss over the deep-supervision outputs (highest resolution first)."""

    def __init__(self, loss: nn.Module, weights: Sequence[float]) -> None:
        super().__init__()
        self.loss, self.weights = loss, tuple(float(w) for w in weights)

    def forward(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        terms = [
            w * self.loss(o, t)
            for w, o, t in zip(self.weights, outputs, targets, strict=True)
            if w != 0.0
        ]
        return torch.stack(terms).sum()
