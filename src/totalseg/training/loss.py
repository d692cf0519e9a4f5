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
    """nnU-Net's MemoryEfficientSoftDiceLoss on logits (softmax applied here).

    Computed without a one-hot tensor: the intersection of class c is the sum of the predicted
    probability of the true class over the voxels labelled c (`scatter_add`), which is the same
    sum as nnU-Net's ``(softmax * onehot).sum()`` at a fraction of the memory and time when
    there are ~100 classes.
    """

    def __init__(self, *, batch_dice: bool = False, do_bg: bool = False, smooth: float = 1e-5):
        super().__init__()
        self.batch_dice, self.do_bg, self.smooth = batch_dice, do_bg, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`logits` (B, C, ...), `target` (B, 1, ...) integer labels."""
        return self.from_probabilities(torch.softmax(logits, 1), target[:, 0].long())

    def from_probabilities(self, probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """`probs` (B, C, ...) softmax output, `labels` (B, ...) int64."""
        b, c = probs.shape[:2]
        p = probs.reshape(b, c, -1).float()
        y = labels.reshape(b, 1, -1)
        p_true = p.gather(1, y)
        intersect = torch.zeros(b, c, device=p.device).scatter_add(1, y[:, 0], p_true[:, 0])
        with torch.no_grad():
            ones = torch.ones(y.shape[0], y.shape[2], device=p.device)
            sum_gt = torch.zeros(b, c, device=p.device).scatter_add(1, y[:, 0], ones)
        sum_pred = p.sum(2)
        if not self.do_bg:
            intersect, sum_pred, sum_gt = intersect[:, 1:], sum_pred[:, 1:], sum_gt[:, 1:]
        if self.batch_dice:
            intersect, sum_pred, sum_gt = intersect.sum(0), sum_pred.sum(0), sum_gt.sum(0)
        dc = (2 * intersect + self.smooth) / (sum_gt + sum_pred + self.smooth).clamp_min(1e-8)
        return -dc.mean()


class DiceCELoss(nn.Module):
    """Soft Dice (no background) + cross-entropy, weight 1 each (nnU-Net's DC_and_CE_loss).

    One log-softmax feeds both terms (the Dice term takes its exponential).
    """

    def __init__(self, *, batch_dice: bool = False, smooth: float = 1e-5) -> None:
        super().__init__()
        self.dice = SoftDiceLoss(batch_dice=batch_dice, do_bg=False, smooth=smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labels = target[:, 0].long()
        log_probs = torch.log_softmax(logits.float(), 1)
        ce = nn.functional.nll_loss(log_probs, labels)
        return self.dice.from_probabilities(log_probs.exp(), labels) + ce


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
