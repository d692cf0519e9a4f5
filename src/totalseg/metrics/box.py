"""Bounding boxes of masks and label maps, so metrics only touch the voxels around a structure.

A box is a tuple of three slices with concrete, non-negative start/stop (the type
`scipy.ndimage.find_objects` returns). One pass over a label map finds the boxes of all labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from totalseg.errors import InputError

__all__ = ["Box", "bounding_box", "label_boxes", "union_box"]

Box = tuple[slice, slice, slice]


def _span(flags: np.ndarray) -> slice | None:
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return None
    return slice(int(idx[0]), int(idx[-1]) + 1)


def bounding_box(mask: np.ndarray) -> Box | None:
    """Smallest box holding every nonzero voxel of a 3D mask; None for an empty mask."""
    if mask.ndim != 3:
        raise InputError(f"Expected a 3D mask, got {mask.ndim}D with shape {mask.shape}.")
    plane = np.any(mask, axis=2)  # one full pass; the rest works on small projections
    span_i = _span(np.any(plane, axis=1))
    if span_i is None:
        return None
    span_j = _span(np.any(plane, axis=0))
    span_k = _span(np.any(mask[span_i], axis=(0, 1)))
    assert span_j is not None and span_k is not None
    return (span_i, span_j, span_k)


def label_boxes(labels: np.ndarray, *, max_label: int | None = None) -> dict[int, Box]:
    """Boxes of every label value present in an integer label map, in one pass."""
    if labels.dtype.kind not in "iu":
        raise InputError(f"Expected an integer label map, got dtype {labels.dtype}.")
    if labels.dtype.kind == "i" and labels.size and int(labels.min()) < 0:
        raise InputError("Expected non-negative labels, got negative values in the label map.")
    top = int(labels.max()) if max_label is None and labels.size else int(max_label or 0)
    if top <= 0:
        return {}
    arr = labels if labels.dtype.itemsize <= 4 else labels.astype(np.int32)
    found = ndimage.find_objects(arr, max_label=top)
    return {i + 1: tuple(s) for i, s in enumerate(found) if s is not None}


def union_box(*boxes: Box | None, shape: Sequence[int], margin: int = 0) -> Box | None:
    """Smallest box holding all given boxes (None entries skipped), grown by `margin`, clipped."""
    present = [b for b in boxes if b is not None]
    if not present:
        return None
    out = []
    for axis in range(3):
        lo = min(b[axis].start for b in present) - margin
        hi = max(b[axis].stop for b in present) + margin
        out.append(slice(max(lo, 0), min(hi, int(shape[axis]))))
    return (out[0], out[1], out[2])
