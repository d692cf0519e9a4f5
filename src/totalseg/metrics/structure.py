"""All metrics of one structure (reference mask vs predicted mask), with the edge-case policy.

Edge-case policy -- the reference tool's paper evaluation (`resources/evaluate.py`):

| reference | prediction | status       | dice, nsd | hd95_mm, assd_mm | volume_diff_rel |
|-----------|------------|--------------|-----------|------------------|-----------------|
| present   | present    | `ok`         | computed  | computed         | computed        |
| present   | empty      | `pred_empty` | 0         | NaN (excluded)   | -1              |
| empty     | present    | `ref_empty`  | NaN       | NaN              | NaN             |
| empty     | empty      | `both_empty` | NaN       | NaN              | NaN             |

NaN means "excluded from means"; the evaluation tables keep the status so exclusions are counted,
never silently dropped. Volumes (`volume_ref_ml`, `volume_pred_ml`, `volume_diff_ml` = pred - ref)
are always reported. Distances to a missing surface are unbounded, so they are excluded (NaN)
rather than +inf, which would make every mean infinite.

Other tools differ: DeepMind's `surface-distance` gives Dice 0 and NSD 0 when only one mask is
empty but Dice NaN, NSD NaN (with a warning) and HD95 +inf when both are, and +inf HD95 for a
missing prediction; MONAI's `compute_surface_dice` gives 0 when one is empty and NaN when both
are; the reference tool's own `dice_score` gives 0 for two empty masks (2*0 / (0 + 1e-6)) and 1 in
its tests ("empty-vs-empty scores 1"). Here a missing reference always excludes the pair: a
prediction where the reference has nothing (a false positive structure) is counted under
`ref_empty` and visible through `volume_pred_ml`, as in the paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from totalseg.errors import InputError
from totalseg.metrics.box import Box, bounding_box, union_box
from totalseg.metrics.overlap import count_overlap
from totalseg.metrics.surface import check_spacing, surface_distances_in_box

__all__ = [
    "METRICS",
    "SURFACE_METRICS",
    "Status",
    "StructureResult",
    "check_metrics",
    "evaluate_masks",
    "evaluate_masks_in_box",
]

Status = Literal["ok", "pred_empty", "ref_empty", "both_empty"]

#: Every metric, in table order. `nsd` is at the evaluation's `tolerance_mm`.
METRICS: tuple[str, ...] = (
    "dice",
    "nsd",
    "hd95_mm",
    "assd_mm",
    "volume_ref_ml",
    "volume_pred_ml",
    "volume_diff_ml",
    "volume_diff_rel",
)
#: Metrics that need surface distances (the expensive part; skipped when none is requested).
SURFACE_METRICS = frozenset({"nsd", "hd95_mm", "assd_mm"})


@dataclass(frozen=True)
class StructureResult:
    """Metric values of one structure in one case, and which edge case applied."""

    status: Status
    values: Mapping[str, float]


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """Validate metric names (keeps order, drops repeats)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(
            f"Expected metrics from {', '.join(METRICS)}, got unknown {', '.join(unknown)}."
        )
    if not metrics:
        raise InputError(f"Expected at least one metric from {', '.join(METRICS)}, got none.")
    return tuple(dict.fromkeys(metrics))


def _status(n_ref: int, n_pred: int) -> Status:
    if n_ref and n_pred:
        return "ok"
    if n_ref:
        return "pred_empty"
    return "ref_empty" if n_pred else "both_empty"


def evaluate_masks_in_box(
    ref: np.ndarray,
    pred: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    tolerance_mm: float = 3.0,
    voxel_volume_mm3: float | None = None,
    metrics: Sequence[str] = METRICS,
) -> StructureResult:
    """Metrics of two same-shape boolean masks that lie completely inside the arrays' box."""
    spacing = check_spacing(spacing_mm)
    wanted = check_metrics(metrics)
    if not np.isfinite(tolerance_mm) or tolerance_mm < 0:
        raise InputError(f"Expected a tolerance >= 0 mm, got {tolerance_mm}.")
    voxel_mm3 = float(np.prod(spacing)) if voxel_volume_mm3 is None else float(voxel_volume_mm3)
    counts = count_overlap(ref, pred)
    status = _status(counts.n_ref, counts.n_pred)
    vol_ref, vol_pred = counts.volumes_ml(voxel_mm3)
    nan = float("nan")
    values: dict[str, float] = {
        "dice": nan,
        "nsd": nan,
        "hd95_mm": nan,
        "assd_mm": nan,
        "volume_ref_ml": vol_ref,
        "volume_pred_ml": vol_pred,
        "volume_diff_ml": vol_pred - vol_ref,
        "volume_diff_rel": (vol_pred - vol_ref) / vol_ref if counts.n_ref else nan,
    }
    if status == "pred_empty":
        values["dice"] = 0.0
        values["nsd"] = 0.0
    elif status == "ok":
        values["dice"] = counts.dice
        if SURFACE_METRICS.intersection(wanted):
            distances = surface_distances_in_box(ref, pred, spacing_mm=spacing)
            if "nsd" in wanted:
                values["nsd"] = distances.surface_dice(tolerance_mm)
            if "hd95_mm" in wanted:
                values["hd95_mm"] = distances.hausdorff_mm(95.0)
            if "assd_mm" in wanted:
                values["assd_mm"] = distances.average_symmetric_mm()
    return StructureResult(status=status, values={m: values[m] for m in wanted})


def evaluate_masks(
    ref: np.ndarray,
    pred: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    tolerance_mm: float = 3.0,
    voxel_volume_mm3: float | None = None,
    metrics: Sequence[str] = METRICS,
    boxes: tuple[Box | None, Box | None] | None = None,
) -> StructureResult:
    """Metrics of a reference and a predicted 3D mask on the same grid (see module policy).

    Work is restricted to the union bounding box of the two masks; pass `boxes` (reference box,
    predicted box) when they are already known, e.g. from `label_boxes`.
    """
    ref = np.asarray(ref)
    pred = np.asarray(pred)
    if ref.shape != pred.shape or ref.ndim != 3:
        raise InputError(
            f"Expected two 3D masks of the same shape, got {ref.shape} and {pred.shape}; "
            "put the prediction on the reference grid first."
        )
    ref_box, pred_box = boxes if boxes is not None else (bounding_box(ref), bounding_box(pred))
    box = union_box(ref_box, pred_box, shape=ref.shape)
    if box is None:
        box = (slice(0, 0), slice(0, 0), slice(0, 0))
    return evaluate_masks_in_box(
        ref[box].astype(bool, copy=False),
        pred[box].astype(bool, copy=False),
        spacing_mm=spacing_mm,
        tolerance_mm=tolerance_mm,
        voxel_volume_mm3=voxel_volume_mm3,
        metrics=metrics,
    )
