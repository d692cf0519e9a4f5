"""DICOM series geometry: the checks that every slice shares one grid, and the voxel->LPS
affine of the stack sorted along the slice normal (gaps, duplicates and gantry tilt found
from the positions)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.errors import DicomError
from totalseg.io.dicom.files import SliceHeader, fmt, names

__all__ = ["check_uniform_slices", "stack_geometry"]

_LOG = logging.getLogger(__name__)
_GAP_FACTOR = 1.5  # a step this many times the median step means a missing slice
_ORIENTATION_ATOL = 1e-4  # direction cosines
_SPACING_ATOL_MM = 1e-3
_TILT_TOLERANCE = 1e-3  # in-plane drift of the stack per mm along the normal (gantry tilt)
_MAX_NAMED = 5  # slices named in one error message


def check_uniform_slices(headers: Sequence[SliceHeader], where: Path) -> None:
    multi = [h for h in headers if h.n_frames != 1]
    if multi:
        raise DicomError(
            f"Expected single-frame slices, got {multi[0].n_frames} frames in "
            f"'{multi[0].source.name}' ('{where}'); convert enhanced/multi-frame DICOM with "
            "dcm2niix first."
        )
    if len(headers) < 2:
        raise DicomError(
            f"Expected a volume of at least 2 slices, got {len(headers)} slice "
            f"('{headers[0].source.name}' in '{where}'); pass the folder with the whole series."
        )
    missing = [h for h in headers if h.pixel_spacing_mm is None]
    if missing:
        raise DicomError(
            f"Expected PixelSpacing in every slice, got none in {names(missing)} ('{where}'); "
            "the series cannot be placed in space."
        )
    _check_same(headers, lambda h: (h.rows, h.columns), "Rows, Columns", where, atol=0.0)
    _check_same(headers, lambda h: h.orientation, "ImageOrientationPatient", where)
    _check_same(headers, lambda h: h.pixel_spacing_mm, "PixelSpacing", where, atol=_SPACING_ATOL_MM)


def _check_same(
    headers: Sequence[SliceHeader],
    key: Callable[[SliceHeader], Any],
    what: str,
    where: Path,
    *,
    atol: float = _ORIENTATION_ATOL,
) -> None:
    """Raise naming the slices whose `key` differs from the most common value."""
    counts = Counter(tuple(np.round(np.asarray(key(h), dtype=float), 4)) for h in headers)
    reference = np.asarray(max(counts, key=counts.__getitem__))
    odd = [h for h in headers if not np.allclose(key(h), reference, rtol=0.0, atol=atol)]
    if odd:
        got = ", ".join(f"'{h.source.name}' {fmt(key(h))}" for h in odd[:_MAX_NAMED])
        raise DicomError(
            f"Expected the same {what} {fmt(reference)} in every slice, got {len(odd)} "
            f"differing: {got}{' ...' if len(odd) > _MAX_NAMED else ''} ('{where}'); remove "
            "those slices or choose another series with --series."
        )


def stack_geometry(
    headers: Sequence[SliceHeader], where: Path
) -> tuple[list[SliceHeader], np.ndarray]:
    """The slices sorted along the normal and the voxel->LPS affine of the stack."""
    row_cos, col_cos = _direction_cosines(headers[0], where)
    normal = np.cross(row_cos, col_cos)
    offsets = [float(np.dot(h.position_mm, normal)) for h in headers]
    order = sorted(range(len(headers)), key=lambda n: (offsets[n], headers[n].source.name))
    ordered = [headers[n] for n in order]
    offsets_mm = np.array([offsets[n] for n in order])
    step_mm = _check_steps(ordered, offsets_mm, where)
    first, last = np.array(ordered[0].position_mm), np.array(ordered[-1].position_mm)
    k_axis = normal * step_mm
    drift = (last - first) - normal * (offsets_mm[-1] - offsets_mm[0])
    if np.linalg.norm(drift) > _TILT_TOLERANCE * (offsets_mm[-1] - offsets_mm[0]):
        msg = "Slices of '%s' drift %.3g mm in-plane (gantry tilt?); using a sheared affine."
        _LOG.warning(msg, where, float(np.linalg.norm(drift)))
        k_axis = (last - first) / (len(ordered) - 1)
    row_spacing_mm, col_spacing_mm = ordered[0].pixel_spacing_mm or (1.0, 1.0)
    affine = np.eye(4)
    affine[:3, 0] = row_cos * col_spacing_mm  # i: along a row, one column to the next
    affine[:3, 1] = col_cos * row_spacing_mm  # j: along a column, one row to the next
    affine[:3, 2] = k_axis
    affine[:3, 3] = first
    return ordered, affine


def _direction_cosines(header: SliceHeader, where: Path) -> tuple[np.ndarray, np.ndarray]:
    row_cos = np.array(header.orientation[:3])
    col_cos = np.array(header.orientation[3:])
    norms = (np.linalg.norm(row_cos), np.linalg.norm(col_cos))
    if min(norms) < 1e-6 or abs(float(np.dot(row_cos, col_cos))) > 1e-3 * norms[0] * norms[1]:
        raise DicomError(
            f"Expected two orthogonal direction cosines in ImageOrientationPatient, got "
            f"{fmt(header.orientation)} ('{header.source.name}' in '{where}'); the file is "
            "malformed."
        )
    return row_cos / norms[0], col_cos / norms[1]


def _check_steps(ordered: Sequence[SliceHeader], offsets_mm: np.ndarray, where: Path) -> float:
    """The mean slice step in mm, after refusing duplicate positions and gaps."""
    steps = np.diff(offsets_mm)
    median = float(np.median(steps))
    for n, step in enumerate(steps):
        a, b = ordered[n], ordered[n + 1]
        pair = f"'{a.source.name}' ({offsets_mm[n]:.2f} mm) and '{b.source.name}' " + (
            f"({offsets_mm[n + 1]:.2f} mm)"
        )
        if step < max(_SPACING_ATOL_MM, 0.01 * median):
            raise DicomError(
                f"Expected one slice per position, got two at the same position: {pair} "
                f"('{where}'); remove the duplicate or choose one series with --series."
            )
        if step > _GAP_FACTOR * median:
            raise DicomError(
                f"Expected evenly spaced slices (median step {median:.3g} mm), got a gap of "
                f"{step:.3g} mm between {pair}, about {round(step / median) - 1} missing "
                f"slice(s) ('{where}'); add the missing files or export the series again."
            )
    if float(np.max(np.abs(steps - median))) > max(_SPACING_ATOL_MM, 0.01 * median):
        msg = "Slice steps of '%s' vary from %.4g to %.4g mm; using their mean."
        _LOG.warning(msg, where, float(steps.min()), float(steps.max()))
    return float((offsets_mm[-1] - offsets_mm[0]) / (len(ordered) - 1))
