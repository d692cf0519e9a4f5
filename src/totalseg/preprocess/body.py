"""A body mask from CT intensities alone (no network), conservative by construction.

Used to skip sliding-window tiles that lie wholly outside the patient (`inference/`) and to crop
to the body (`--body-seg`). Being too large only costs time; being too small would lose labels,
so every step errs outwards:

1. block-reduce to about `coarse_mm` per voxel, a block counting as tissue if ANY voxel in it is
   above `threshold_hu` (the mask is computed on that coarse grid, then repeated back);
2. drop connected tissue components smaller than `min_component_ml` (noise specks), keeping every
   larger one (arms beside an abdomen are separate components in the field of view; so is the
   table, which merely costs time);
3. fill every voxel enclosed by tissue on both sides along ANY axis (lungs, bowel gas and the
   airway count as inside, also where the field of view cuts through the chest wall);
4. dilate by `margin_mm`.

Orientation-free (no axis is assumed to be axial) and pure numpy/scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from totalseg.errors import InputError
from totalseg.image import Image

__all__ = ["body_box", "body_mask", "crop_to_body"]


def body_mask(
    hu: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    threshold_hu: float = -500.0,
    min_component_ml: float = 5.0,
    margin_mm: float = 10.0,
    coarse_mm: float = 6.0,
) -> np.ndarray:
    """Boolean mask (same shape as `hu`) of the patient's body, from HU values."""
    if hu.ndim != 3 or len(spacing_mm) != 3:
        raise InputError(
            f"Expected a 3D HU array and 3 spacings, got shape {hu.shape} and {tuple(spacing_mm)}."
        )
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if not np.all(spacing > 0):
        raise InputError(f"Expected positive spacings, got {tuple(spacing_mm)}.")
    block = tuple(max(1, int(coarse_mm // s)) for s in spacing)
    coarse = _any_per_block(hu > threshold_hu, block)
    coarse_spacing = spacing * np.asarray(block)
    coarse = _drop_small(coarse, min_component_ml * 1000.0 / float(np.prod(coarse_spacing)))
    coarse |= _enclosed(coarse)
    # one block more than the margin, so the coarse mask covers what a finer one would
    radius = [
        math.ceil(margin_mm / s) + (b > 1) for s, b in zip(coarse_spacing, block, strict=True)
    ]
    if any(radius):
        coarse = ndimage.binary_dilation(coarse, structure=_ellipsoid(radius))
    full = coarse
    for axis, b in enumerate(block):
        if b > 1:
            full = np.repeat(full, b, axis=axis)
    return np.ascontiguousarray(full[: hu.shape[0], : hu.shape[1], : hu.shape[2]])


def body_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """The bounding box of a mask as slices, or None when it is empty."""
    if not mask.any():
        return None
    slices = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        slices.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return slices[0], slices[1], slices[2]


def crop_to_body(
    image: Image, *, margin_mm: float = 10.0
) -> tuple[Image, tuple[slice, slice, slice]] | None:
    """`image` cropped to the box of its body mask, with an affine that keeps every voxel's
    patient coordinates, and the box (slices of the input); None when there is no body."""
    data = np.asarray(image.array)
    box = body_box(body_mask(data, image.spacing_mm, margin_mm=margin_mm))
    if box is None:
        return None
    affine = image.affine.copy()
    affine[:3, 3] = (image.affine @ np.array([*(s.start for s in box), 1.0]))[:3]
    return Image(np.ascontiguousarray(data[box]), affine), box


def _any_per_block(mask: np.ndarray, block: tuple[int, ...]) -> np.ndarray:
    if all(b == 1 for b in block):
        return mask.copy()
    pad = [(0, (-s) % b) for s, b in zip(mask.shape, block, strict=True)]
    padded = np.pad(mask, pad) if any(p for _, p in pad) else mask
    shape: list[int] = []
    for s, b in zip(padded.shape, block, strict=True):
        shape += [s // b, b]
    return np.asarray(padded.reshape(shape).any(axis=(1, 3, 5)))


def _drop_small(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    if not keep.any():  # only specks: keep the largest rather than nothing
        keep[int(np.argmax(sizes[1:])) + 1] = True
    return np.asarray(keep[labels])


def _enclosed(mask: np.ndarray) -> np.ndarray:
    """Voxels with mask on both sides along at least one axis."""
    out = np.zeros_like(mask)
    for axis in range(mask.ndim):
        before = np.maximum.accumulate(mask, axis=axis)
        after = np.flip(np.maximum.accumulate(np.flip(mask, axis), axis=axis), axis)
        out |= before & after
    return out


def _ellipsoid(radius: Sequence[int]) -> np.ndarray:
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    dist = sum((g / max(r, 1)) ** 2 for g, r in zip(grids, radius, strict=True))
    return np.asarray(dist <= 1.0)
