"""Closest canonical (RAS+) orientation by axis permutation and flips, and its exact inverse.

No resampling happens: the array is transposed/flipped so that i, j, k point as close as possible
to +x (towards the patient's Right), +y (Anterior), +z (Superior) of RAS+ world space, like
`nibabel.as_closest_canonical`. An oblique rotation stays in the affine. `restore` gives back the
identical array and the identical affine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from nibabel import orientations as ornt

from totalseg.errors import GeometryError
from totalseg.image import Image, LabelMap

__all__ = ["Reorientation", "on_grid_of", "restore", "to_canonical"]

V = TypeVar("V", Image, LabelMap)
W = TypeVar("W", Image, LabelMap)
_RAS = ornt.axcodes2ornt(("R", "A", "S"))


@dataclass(frozen=True, eq=False)
class Reorientation:
    """How a volume was brought to canonical orientation: enough to undo it exactly."""

    original_shape: tuple[int, int, int]
    original_affine: np.ndarray
    transform: np.ndarray  # nibabel orientation transform, original -> canonical

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.transform, _RAS))


def to_canonical(volume: V) -> tuple[V, Reorientation]:
    """The volume in closest canonical RAS+ orientation, and the record to undo it."""
    source = ornt.io_orientation(volume.affine)
    transform = ornt.ornt_transform(source, _RAS)
    record = Reorientation(volume.shape, volume.affine.copy(), transform)
    if record.is_identity:
        return volume, record
    array = ornt.apply_orientation(np.asarray(volume.array), transform)
    affine = volume.affine @ ornt.inv_ornt_aff(transform, volume.shape)
    return dataclasses.replace(volume, array=np.ascontiguousarray(array), affine=affine), record


def restore(volume: V, record: Reorientation) -> V:
    """Undo `to_canonical`: the original axis order, flips and affine, bit for bit."""
    inverse = ornt.ornt_transform(_RAS, ornt.io_orientation(record.original_affine))
    if record.is_identity:
        array = np.asarray(volume.array)
    else:
        array = ornt.apply_orientation(np.asarray(volume.array), inverse)
    if array.shape != record.original_shape:
        raise GeometryError(
            f"Expected a canonical volume of the recorded shape, got {volume.shape} which "
            f"restores to {array.shape} instead of {record.original_shape}."
        )
    return dataclasses.replace(
        volume, array=np.ascontiguousarray(array), affine=record.original_affine
    )


def on_grid_of(volume: V, reference: W) -> V:
    """`volume` on the reference's grid when it holds the same voxels in another axis order
    (e.g. a DICOM series and a NIfTI made of it by dicom2nifti); otherwise unchanged, so that
    the caller's grid check reports the mismatch."""
    if volume.same_grid(reference):
        return volume
    canonical_reference, record = to_canonical(reference)
    canonical, _ = to_canonical(volume)
    if not canonical.same_grid(canonical_reference):
        return volume
    return restore(canonical, record)
