"""Bringing a label map predicted on the model grid back onto the exact input grid.

The way back mirrors the reference tool: nearest-neighbour (order 0) zoom to the exact canonical
input shape placed on the canonical input affine, then the canonical reorientation undone. The
result has the input's shape and affine exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from totalseg.image import Image, LabelMap
from totalseg.preprocess.orientation import Reorientation, restore, to_canonical
from totalseg.preprocess.resample import SpacingChange, zoom_labels_to_grid, zoom_to_spacing

__all__ = ["ModelGrid", "restore_labels", "to_model_grid", "zoom_canonical"]


@dataclass(frozen=True, eq=False)
class ModelGrid:
    """Every geometric step from the input grid to the model grid, in order, to be undone."""

    reorientation: Reorientation
    spacing_change: SpacingChange

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        return self.spacing_change.source_shape

    @property
    def canonical_affine(self) -> np.ndarray:
        return self.spacing_change.source_affine


def to_model_grid(
    image: Image,
    spacing_mm: float | Sequence[float] | None,
    *,
    order: int = 1,
    truncate_to_int32: bool = True,
    mode: str = "nearest",
) -> tuple[Image, ModelGrid]:
    """Closest canonical RAS, then the reference tool's zoom to `spacing_mm` (see resample);
    `spacing_mm=None` keeps the input's spacing (tasks that let nnU-Net resample). `mode` is
    scipy's boundary mode ('constant' for TotalSegmentator 1.x)."""
    canonical, reorientation = to_canonical(image)
    return zoom_canonical(
        canonical, reorientation, spacing_mm, order=order, truncate_to_int32=truncate_to_int32,
        mode=mode,
    )  # fmt: skip


def zoom_canonical(
    canonical: Image,
    reorientation: Reorientation,
    spacing_mm: float | Sequence[float] | None,
    *,
    order: int = 1,
    truncate_to_int32: bool = True,
    mode: str = "nearest",
) -> tuple[Image, ModelGrid]:
    """The second step of `to_model_grid`: a canonical image (and how it was reoriented) zoomed
    to `spacing_mm`."""
    if spacing_mm is None:
        kept = SpacingChange(canonical.shape, canonical.affine.copy(), (1.0, 1.0, 1.0), False)
        return canonical, ModelGrid(reorientation, kept)
    resampled, change = zoom_to_spacing(
        canonical, spacing_mm, order=order, truncate_to_int32=truncate_to_int32, mode=mode
    )
    return resampled, ModelGrid(reorientation, change)


def restore_labels(labels: LabelMap, grid: ModelGrid) -> LabelMap:
    """Labels on the model grid -> labels on the original input grid (same shape and affine)."""
    canonical = zoom_labels_to_grid(labels, grid.canonical_shape, grid.canonical_affine)
    return restore(canonical, grid.reorientation)
