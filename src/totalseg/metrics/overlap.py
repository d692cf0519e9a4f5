"""Overlap and volume measures of two boolean masks on the same grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from totalseg.errors import InputError

__all__ = ["OverlapCounts", "count_overlap", "dice_score"]


@dataclass(frozen=True)
class OverlapCounts:
    """Voxel counts of a reference mask, a predicted mask and their intersection."""

    n_ref: int
    n_pred: int
    n_both: int

    @property
    def dice(self) -> float:
        """2|A∩B| / (|A| + |B|); NaN when both masks are empty (0/0, undefined)."""
        total = self.n_ref + self.n_pred
        return 2.0 * self.n_both / total if total else float("nan")

    def volumes_ml(self, voxel_volume_mm3: float) -> tuple[float, float]:
        """Reference and predicted volume in ml (1 ml = 1000 mm^3)."""
        return (self.n_ref * voxel_volume_mm3 / 1000.0, self.n_pred * voxel_volume_mm3 / 1000.0)


def count_overlap(ref: np.ndarray, pred: np.ndarray) -> OverlapCounts:
    """Count voxels of two same-shape masks (nonzero = inside)."""
    if ref.shape != pred.shape:
        raise InputError(
            f"Expected two masks of the same shape, got {ref.shape} and {pred.shape}; "
            "put the prediction on the reference grid first."
        )
    ref_b = np.asarray(ref, dtype=bool)
    pred_b = np.asarray(pred, dtype=bool)
    return OverlapCounts(
        n_ref=int(np.count_nonzero(ref_b)),
        n_pred=int(np.count_nonzero(pred_b)),
        n_both=int(np.count_nonzero(ref_b & pred_b)),
    )


def dice_score(ref: np.ndarray, pred: np.ndarray) -> float:
    """Dice coefficient of two masks; NaN when both are empty (see `metrics.structure` policy)."""
    return count_overlap(ref, pred).dice
