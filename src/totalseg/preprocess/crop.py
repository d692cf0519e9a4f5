"""Crop to the nonzero region exactly as nnU-Net v2 does, and put a crop back.

nnU-Net's `crop_to_nonzero`: the mask is "any channel != 0", holes are filled with
`scipy.ndimage.binary_fill_holes` (default cross structure), and the bounding box is the half-open
extent [first, last + 1) of the filled mask per axis. An empty mask keeps the full image. For CT
this is usually a no-op (air is -1000, hence nonzero); only slabs of exact zeros are removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from totalseg.errors import InputError

__all__ = [
    "CropBox",
    "box_of_mask",
    "crop_to_box",
    "filled_nonzero_mask",
    "nonzero_box",
    "uncrop",
]


@dataclass(frozen=True)
class CropBox:
    """A half-open box [start, stop) per spatial axis inside an array of shape `source_shape`."""

    starts: tuple[int, ...]
    stops: tuple[int, ...]
    source_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.source_shape)
        if len(self.starts) != n or len(self.stops) != n:
            raise InputError(
                f"Expected one start and stop per axis of a {n}D shape, got "
                f"starts={self.starts}, stops={self.stops}."
            )
        for a, b, s in zip(self.starts, self.stops, self.source_shape, strict=True):
            if not 0 <= a < b <= s:
                raise InputError(
                    f"Expected 0 <= start < stop <= size for every axis, got starts="
                    f"{self.starts}, stops={self.stops} in shape {self.source_shape}."
                )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.starts, self.stops, strict=True))

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.starts, self.stops, strict=True))

    @property
    def is_full(self) -> bool:
        return self.shape == tuple(self.source_shape)


def filled_nonzero_mask(data: np.ndarray) -> np.ndarray:
    """nnU-Net's `create_nonzero_mask` of a (C, ...) array: any channel != 0, holes filled."""
    if data.ndim < 2:
        raise InputError(f"Expected a (channels, ...) array, got shape {data.shape}.")
    mask = data[0] != 0
    for c in range(1, data.shape[0]):
        mask |= data[c] != 0
    return np.asarray(ndimage.binary_fill_holes(mask))


def box_of_mask(mask: np.ndarray) -> CropBox:
    """Half-open bounding box of a boolean mask; the full extent when the mask is empty."""
    spatial = tuple(int(s) for s in mask.shape)
    starts, stops = [], []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=others))
        if present.size == 0:  # empty mask: nnU-Net keeps the full extent on every axis
            return CropBox((0,) * mask.ndim, spatial, spatial)
        starts.append(int(present[0]))
        stops.append(int(present[-1]) + 1)
    return CropBox(tuple(starts), tuple(stops), spatial)


def nonzero_box(data: np.ndarray) -> CropBox:
    """nnU-Net's crop box of a (C, ...) array: the box of the filled nonzero mask."""
    return box_of_mask(filled_nonzero_mask(data))


def crop_to_box(data: np.ndarray, box: CropBox) -> np.ndarray:
    """The box of the trailing spatial axes of `data` (leading axes, e.g. channels, kept)."""
    lead = data.ndim - len(box.source_shape)
    if lead < 0 or data.shape[lead:] != tuple(box.source_shape):
        raise InputError(
            f"Expected an array whose last axes have shape {box.source_shape}, got {data.shape}."
        )
    return data[(slice(None),) * lead + box.slices]


def uncrop(cropped: np.ndarray, box: CropBox, *, fill: float = 0) -> np.ndarray:
    """Paste `cropped` (trailing axes of shape box.shape) into a `fill` array of source shape."""
    lead = cropped.ndim - len(box.source_shape)
    if lead < 0 or cropped.shape[lead:] != box.shape:
        raise InputError(
            f"Expected an array whose last axes have the crop shape {box.shape}, got "
            f"{cropped.shape}."
        )
    out = np.full(cropped.shape[:lead] + tuple(box.source_shape), fill, dtype=cropped.dtype)
    out[(slice(None),) * lead + box.slices] = cropped
    return out
