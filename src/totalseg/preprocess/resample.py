"""Resampling: nnU-Net v2's `resample_data_or_seg_to_shape`, and the reference tool's zoom steps.

Two families, both bit-exact with the code they mirror:

* nnU-Net (`nnunet_new_shape`, `separate_z_axis`, `resample_to_shape`): works on (C, ...) arrays
  in nnU-Net array order. Plain 3D resizing is skimage's `resize(order, mode='edge',
  anti_aliasing=False)`, i.e. `scipy.ndimage.zoom(grid_mode=True, mode='nearest')` on float64 then
  clipped to the input's min/max. With anisotropic spacing (max/min > 3) every slice across the
  low-resolution axis is resized in 2D and that axis gets nearest-neighbour (floor(c + 0.5)).
  The result has the input dtype (float32 data, float16 logits).
* The reference tool (`zoom_to_spacing`, `zoom_labels_to_grid`): `scipy.ndimage.zoom` with the
  default align-corners grid and mode 'nearest' from the canonical image to the task spacing
  (the zoom from the float32 header spacing), output truncated to int32 in "reference" mode; back
  with order 0 to the exact canonical input shape and affine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from totalseg.errors import InputError
from totalseg.image import Image, LabelMap

__all__ = [
    "ANISO_THRESHOLD",
    "SpacingChange",
    "nnunet_new_shape",
    "resample_to_shape",
    "separate_z_axis",
    "zoom_labels_to_grid",
    "zoom_to_spacing",
]

ANISO_THRESHOLD = 3.0


def nnunet_new_shape(
    shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float]
) -> tuple[int, ...]:
    """nnU-Net's `compute_new_shape`: round(spacing / new_spacing * size), halves to even."""
    if not len(shape) == len(spacing) == len(new_spacing):
        raise InputError(
            f"Expected shape and spacings of one length, got {tuple(shape)}, {tuple(spacing)}, "
            f"{tuple(new_spacing)}."
        )
    return tuple(
        round(float(s) / float(t) * int(n))
        for s, t, n in zip(spacing, new_spacing, shape, strict=True)
    )


def _lowres_axis(spacing: Sequence[float]) -> int | None:
    arr = np.asarray(spacing, dtype=np.float64)
    axes = np.where(max(spacing) / arr == 1)[0]
    return int(axes[0]) if len(axes) == 1 else None


def separate_z_axis(
    spacing: Sequence[float],
    new_spacing: Sequence[float],
    *,
    force_separate_z: bool | None = None,
    threshold: float = ANISO_THRESHOLD,
) -> int | None:
    """The axis to resample separately (nearest neighbour), or None for plain resizing.

    nnU-Net's rule: the current spacing decides first, then the target spacing (max/min >
    threshold); the axis is the one with the largest spacing, and separate z is off when two or
    three axes share it.
    """
    if force_separate_z is not None:
        return _lowres_axis(spacing) if force_separate_z else None
    for sp in (spacing, new_spacing):
        if np.max(sp) / np.min(sp) > threshold:
            return _lowres_axis(sp)
    return None


def _resize(array: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    """skimage's resize(array, shape, order, mode='edge', anti_aliasing=False) of float64 data."""
    factors = np.divide(array.shape, shape)
    zoom = [1 / f for f in factors]
    out = ndimage.zoom(array, zoom, order=order, mode="nearest", grid_mode=True)
    np.clip(out, np.min(array), np.max(array), out=out)
    return out


def _nearest_along(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    """map_coordinates(order=0, mode='nearest') along one axis: index floor(c + 0.5), clamped."""
    old = array.shape[axis]
    coords = float(old) / size * (np.arange(size) + 0.5) - 0.5
    index = np.clip(np.floor(coords + 0.5).astype(np.int64), 0, old - 1)
    return np.take(array, index, axis=axis)


def _resample_separate_z(
    channel: np.ndarray, new_shape: tuple[int, ...], axis: int, order: int, order_z: int
) -> np.ndarray:
    shape = channel.shape
    in_plane = tuple(s for a, s in enumerate(new_shape) if a != axis)
    tmp_shape = list(new_shape)
    tmp_shape[axis] = shape[axis]
    stack = np.zeros(tmp_shape, dtype=np.float64)
    for i in range(shape[axis]):
        index = (slice(None),) * axis + (i,)
        stack[index] = _resize(channel[index], in_plane, order)
    if shape[axis] == new_shape[axis]:
        return stack
    if order_z == 0:
        return _nearest_along(stack, axis, new_shape[axis])
    scales = [float(o) / n for o, n in zip(stack.shape, new_shape, strict=True)]
    grids = np.mgrid[tuple(slice(0, n) for n in new_shape)]
    coords = np.array([s * (g + 0.5) - 0.5 for s, g in zip(scales, grids, strict=True)])
    return ndimage.map_coordinates(stack, coords, order=order_z, mode="nearest")


def resample_to_shape(
    data: np.ndarray,
    new_shape: Sequence[int],
    *,
    spacing: Sequence[float],
    new_spacing: Sequence[float],
    order: int = 3,
    order_z: int = 0,
    force_separate_z: bool | None = None,
    threshold: float = ANISO_THRESHOLD,
) -> np.ndarray:
    """nnU-Net's `resample_data_or_seg_to_shape` for data or logits (not label maps).

    `data` is (C, ...) in nnU-Net array order; the result has the same dtype. When the shape does
    not change the input is returned unchanged (no copy, no rounding).
    """
    if data.ndim != len(new_shape) + 1:
        raise InputError(
            f"Expected a (C, ...) array with {len(new_shape)} spatial axes, got shape {data.shape}."
        )
    target = tuple(int(s) for s in new_shape)
    if tuple(data.shape[1:]) == target:
        return data
    axis = separate_z_axis(
        spacing, new_spacing, force_separate_z=force_separate_z, threshold=threshold
    )
    out = np.zeros((data.shape[0], *target), dtype=data.dtype)
    for c in range(data.shape[0]):
        channel = data[c].astype(np.float64)
        if axis is not None:
            out[c] = _resample_separate_z(channel, target, axis, order, order_z)
        else:
            out[c] = _resize(channel, target, order)
    return out


@dataclass(frozen=True, eq=False)
class SpacingChange:
    """How `zoom_to_spacing` changed a grid: enough to land labels back on the source grid."""

    source_shape: tuple[int, int, int]
    source_affine: np.ndarray
    zoom: tuple[float, float, float]
    applied: bool


def _header_spacing(affine: np.ndarray) -> np.ndarray:
    """The spacing a NIfTI header stores for this affine (float32 column norms), as float64."""
    norms = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
    return norms.astype(np.float32).astype(np.float64)


def zoom_to_spacing(
    image: Image,
    spacing_mm: float | Sequence[float],
    *,
    order: int = 1,
    truncate_to_int32: bool = True,
    mode: str = "nearest",
) -> tuple[Image, SpacingChange]:
    """The reference tool's `change_spacing`: scipy zoom to `spacing_mm`, mode 'nearest'.

    The zoom is header spacing (float32) / target; the new affine divides each column by its
    zoom. `truncate_to_int32` reproduces the reference's `astype(int32)`; without it the result
    is float32. `mode` is scipy's boundary mode: 'nearest' since reference 2.8, 'constant'
    (scipy's default) in TotalSegmentator 1.x. A zoom of exactly 1 on every axis is skipped
    (the image is returned as is).
    """
    target = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
    if np.any(~np.isfinite(target)) or np.any(target <= 0):
        raise InputError(f"Expected positive target spacings in mm, got {tuple(target)}.")
    zoom = _header_spacing(image.affine) / target
    zooms = (float(zoom[0]), float(zoom[1]), float(zoom[2]))
    change = SpacingChange(image.shape, image.affine.copy(), zooms, False)
    if np.all(zoom == 1.0):
        return image, change
    affine = image.affine.copy()
    affine[:3, :3] = affine[:3, :3] / zoom[None, :]
    out = ndimage.zoom(np.asarray(image.array), zoom, output=np.float64, order=order, mode=mode)
    array = out.astype(np.int32) if truncate_to_int32 else out.astype(np.float32)
    return Image(array, affine), dataclasses.replace(change, applied=True)


def zoom_labels_to_grid(labels: LabelMap, shape: Sequence[int], affine: np.ndarray) -> LabelMap:
    """Nearest-neighbour (order 0) zoom of a label map to an exact shape, placed on `affine`.

    The reference tool's way back from the model grid (`change_spacing(target_shape=..., order=0,
    force_affine=...)`): zoom = target / current per axis, align-corners grid, mode 'nearest'.
    """
    target = tuple(int(s) for s in shape)
    if labels.shape == target:
        return LabelMap(np.asarray(labels.array), affine, labels.labels)
    zoom = np.array(target, dtype=np.float64) / np.array(labels.shape, dtype=np.float64)
    out = np.empty(target, dtype=labels.array.dtype)
    ndimage.zoom(np.asarray(labels.array), zoom, output=out, order=0, mode="nearest")
    return LabelMap(out, affine, labels.labels)
