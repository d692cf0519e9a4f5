"""Image and LabelMap: a 3D array on a world grid described by a 4x4 voxel-to-RAS affine.

Both types are frozen: the array is stored as a read-only view and the affine as a read-only
float64 copy. Geometry (spacing, orientation, voxel volume) is derived from the affine, never
stored twice. Arrays are indexed (i, j, k) like nibabel and the affine. `LabelMap.save` is a
convenience that hands the writing to `totalseg.io` (imported when called).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from totalseg.errors import GeometryError, InputError

__all__ = ["Image", "LabelMap", "orientation_codes", "spacing_from_affine"]


def spacing_from_affine(affine: npt.ArrayLike) -> tuple[float, float, float]:
    """Voxel spacing in mm along i, j, k: the lengths of the affine's first three columns."""
    a = np.asarray(affine, dtype=np.float64)
    norms = np.sqrt((a[:3, :3] ** 2).sum(axis=0))
    return (float(norms[0]), float(norms[1]), float(norms[2]))


def orientation_codes(affine: npt.ArrayLike) -> tuple[str, str, str]:
    """Anatomical direction of increasing i, j, k, e.g. ('R', 'A', 'S') -- nibabel's axcodes."""
    from nibabel.orientations import aff2axcodes

    codes = aff2axcodes(np.asarray(affine, dtype=np.float64))
    return (str(codes[0]), str(codes[1]), str(codes[2]))


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _checked_affine(affine: npt.ArrayLike) -> np.ndarray:
    a = np.array(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise GeometryError(f"Expected a 4x4 affine, got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise GeometryError("Expected a finite affine, got NaN or inf entries; fix the header.")
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise GeometryError(
            "Expected an invertible affine, got a singular one (zero spacing?); fix the header."
        )
    return _readonly(a)


@dataclass(frozen=True, eq=False)
class _Volume:
    array: np.ndarray
    affine: np.ndarray

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim != 3:
            raise InputError(
                f"Expected a 3D array, got {array.ndim}D with shape {array.shape}; "
                "pass a single 3D volume."
            )
        object.__setattr__(self, "array", _readonly(array))
        object.__setattr__(self, "affine", _checked_affine(self.affine))

    @property
    def shape(self) -> tuple[int, int, int]:
        s = self.array.shape
        return (int(s[0]), int(s[1]), int(s[2]))

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return spacing_from_affine(self.affine)

    @property
    def orientation(self) -> tuple[str, str, str]:
        return orientation_codes(self.affine)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def same_grid(self, other: _Volume, *, atol: float = 1e-4) -> bool:
        """True when both volumes have the same shape and (within atol) the same affine."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=atol))

    def check_same_grid(self, other: _Volume, *, what: str = "label map") -> None:
        if not self.same_grid(other):
            raise GeometryError(
                f"Expected the {what} on the image grid (shape {self.shape}), got shape "
                f"{other.shape} and affine differing by "
                f"{float(np.abs(self.affine - other.affine).max()):.3g}; "
                "resample it onto the image first."
            )


@dataclass(frozen=True, eq=False)
class Image(_Volume):
    """Intensities (e.g. CT in HU) on a voxel grid."""

    def __post_init__(self) -> None:
        super().__post_init__()
        kind = self.array.dtype.kind
        if kind not in "iuf":
            raise InputError(
                f"Expected integer or floating-point intensities, got dtype {self.array.dtype}."
            )

    def with_array(self, array: np.ndarray) -> Image:
        """A new Image with the same affine and a new array of the same shape."""
        if np.shape(array) != self.shape:
            raise InputError(f"Expected shape {self.shape}, got {np.shape(array)}.")
        return Image(array, self.affine)


@dataclass(frozen=True, eq=False)
class LabelMap(_Volume):
    """Integer labels on a voxel grid; `labels` maps label values to structure names."""

    labels: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        array = self.array
        if array.dtype == np.bool_:
            object.__setattr__(self, "array", _readonly(array.astype(np.uint8)))
        elif array.dtype.kind not in "iu":
            raise InputError(
                f"Expected an integer label map, got dtype {array.dtype}; "
                "labels must never be interpolated or stored as floats."
            )
        clean = {int(k): str(v) for k, v in dict(self.labels).items()}
        object.__setattr__(self, "labels", MappingProxyType(clean))

    def with_array(self, array: np.ndarray) -> LabelMap:
        if np.shape(array) != self.shape:
            raise InputError(f"Expected shape {self.shape}, got {np.shape(array)}.")
        return LabelMap(array, self.affine, self.labels)

    def save(self, path: str | os.PathLike[str], *, header_from: Any = None) -> Path:
        """Write atomically: a `.nii`/`.nii.gz` path gets one multilabel file with the label
        table (the reference tool's `--ml` layout); any other path becomes a folder with one
        0/1 mask per label, `<name>.nii.gz`. `header_from`: a NIfTI path or header whose codes
        and descriptions to keep. Returns the path written (see `totalseg.io` for more)."""
        from totalseg.io.nifti import is_nifti_path, write_label_map, write_mask_folder

        if is_nifti_path(path):
            return write_label_map(self, path, header_from=header_from)
        write_mask_folder(self, path, header_from=header_from)
        return Path(path)

    def present_labels(self) -> list[int]:
        """Sorted nonzero label values that occur in the array."""
        return [int(v) for v in np.unique(self.array) if v != 0]

    def mask(self, label: int) -> np.ndarray:
        """Boolean mask of one label."""
        return np.asarray(self.array == label)
