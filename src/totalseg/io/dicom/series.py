"""DICOM series: the image slices of a folder or zip grouped by SeriesInstanceUID, the choice
of one series, and reading it as an `Image` in HU (see the package docstring)."""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.errors import DicomError
from totalseg.image import Image
from totalseg.io.dicom.files import (
    SliceHeader,
    Source,
    header_from_dataset,
    open_sources,
    read_dataset,
    require_pydicom,
)
from totalseg.io.dicom.geometry import check_uniform_slices, stack_geometry
from totalseg.io.dicom.pixels import decode_volume

__all__ = ["SeriesInfo", "list_series", "read_dicom_series"]

_LOG = logging.getLogger(__name__)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class SeriesInfo:
    """One series found in a folder or archive."""

    series_uid: str
    modality: str
    n_slices: int
    description: str


# ---------------------------------------------------------------- public functions


def list_series(path: str | os.PathLike[str]) -> list[SeriesInfo]:
    """The image series in a DICOM folder or .zip archive, sorted by series UID."""
    pydicom = require_pydicom()
    where = Path(path)
    with open_sources(where) as sources:
        scan = _scan(pydicom, sources, where)
    _check_broken(scan, None)
    return [_series_info(uid, headers) for uid, headers in sorted(scan.groups.items())]


def read_dicom_series(path: str | os.PathLike[str], *, series_uid: str | None = None) -> Image:
    """Read one CT series (folder or .zip) as an Image in HU on a voxel->RAS affine.

    With several series present, `series_uid` chooses one (see `list_series`). The array is
    int16 when the rescale is exact in int16, else float32.
    """
    pydicom = require_pydicom()
    where = Path(path)
    with open_sources(where) as sources:
        scan = _scan(pydicom, sources, where)
        headers = scan.groups[_select_series(scan, series_uid, where)]
        check_uniform_slices(headers, where)
        try:
            ordered, affine_lps = stack_geometry(headers, where)
        except DicomError as exc:  # a gap may be a file that was skipped: name those
            if not scan.skipped:
                raise
            raise DicomError(
                f"{exc} Skipped as unreadable or not DICOM: {_listed(scan.skipped)}."
            ) from None
        _warn_if_not_ct(ordered, where)
        volume = decode_volume(pydicom, ordered)
    image = Image(volume.transpose(2, 1, 0), _LPS_TO_RAS @ affine_lps)
    _LOG.debug("read %s: shape %s, spacing %s mm", where, image.shape, image.spacing_mm)
    return image


# ---------------------------------------------------------------- header grouping


@dataclass(frozen=True)
class _Scan:
    groups: dict[str, list[SliceHeader]]  # image slices by SeriesInstanceUID, in file order
    broken: dict[str | None, list[DicomError]]  # unreadable files by series UID (None: unknown)
    skipped: list[str]  # files that are not DICOM (or not readable as DICOM)


def _listed(names: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _scan(pydicom: Any, sources: Sequence[Source], where: Path) -> _Scan:
    """Headers of all image slices; non-DICOM files are skipped, unreadable ones set aside."""
    scan = _Scan({}, {}, [])
    skipped: Counter[str] = Counter()
    for source in sources:
        ds = None
        try:
            with warnings.catch_warnings(record=True) as caught:  # pydicom on odd headers
                warnings.simplefilter("always")
                ds = read_dataset(pydicom, source, stop_before_pixels=True)
                header = None if ds is None else header_from_dataset(ds, source)
            for w in caught:
                _LOG.debug("'%s': %s", source.name, w.message)
        except DicomError as exc:
            scan.broken.setdefault(_series_uid_of(ds), []).append(exc)
            continue
        if header is None:
            reason = "not DICOM" if ds is None else "DICOM without image geometry"
            _LOG.debug("skipping '%s' in '%s': %s", source.name, where, reason)
            skipped[reason] += 1
            if ds is None:
                scan.skipped.append(source.name)
        else:
            scan.groups.setdefault(header.series_uid, []).append(header)
    if not scan.groups:
        if scan.broken:
            raise next(iter(scan.broken.values()))[0]
        got = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())) or "no files"
        raise DicomError(
            f"Expected DICOM image slices in '{where}', got {got}; "
            "pass a folder or .zip that holds a CT series."
        )
    return scan


def _series_uid_of(ds: Any) -> str | None:
    try:
        return None if ds is None else str(ds.get("SeriesInstanceUID", "") or "")
    except Exception:  # the UID element itself is corrupt: the file may belong to any series
        return None


def _check_broken(scan: _Scan, selected: str | None) -> None:
    """Raise for an unreadable file that may belong to the selected series, warn for the rest.

    With `selected` None (listing only) every unreadable file is a warning.
    """
    for uid, errors in scan.broken.items():
        if selected is not None and uid in (None, selected):
            raise errors[0]
        for error in errors:
            _LOG.warning("Skipping an unreadable file (series %r): %s", uid, error)


def _series_info(uid: str, headers: Sequence[SliceHeader]) -> SeriesInfo:
    modality = Counter(h.modality for h in headers).most_common(1)[0][0]
    description = next((h.description for h in headers if h.description), "")
    return SeriesInfo(uid, modality, len(headers), description)


def _select_series(scan: _Scan, series_uid: str | None, where: Path) -> str:
    """The UID of the series to read; raises for an unreadable file that may belong to it."""
    if series_uid is not None and series_uid in scan.broken:  # none of its files is readable
        raise scan.broken[series_uid][0]
    selected = _choose_series(scan.groups, series_uid, where)
    _check_broken(scan, selected)
    return selected


def _choose_series(
    groups: dict[str, list[SliceHeader]], series_uid: str | None, where: Path
) -> str:
    listing = "; ".join(
        f"{info.series_uid!r} ({info.n_slices} slices, {info.modality or '?'}, "
        f"{info.description!r})"
        for info in (_series_info(uid, hs) for uid, hs in sorted(groups.items()))
    )
    if series_uid is None:
        if len(groups) == 1:
            return next(iter(groups))
        raise DicomError(
            f"Expected one series in '{where}', got {len(groups)}: {listing}; "
            "pass --series UID to choose one."
        )
    if series_uid not in groups:
        raise DicomError(
            f"Expected one of the series in '{where}', got the unknown series UID "
            f"{series_uid!r}; choose one of: {listing}."
        )
    return series_uid


def _warn_if_not_ct(headers: Sequence[SliceHeader], where: Path) -> None:
    modality = _series_info(headers[0].series_uid, headers).modality
    if modality != "CT":
        msg = "Expected a CT series, got modality %r in '%s'; intensities are not HU."
        _LOG.warning(msg, modality, where)
