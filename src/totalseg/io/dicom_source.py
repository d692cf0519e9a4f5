"""The source series of a DICOM output: its slice headers, one per slice of the image grid.

DICOM-SEG and RTSTRUCT files reference the images they were made from (SOP instances, series,
study, frame of reference) and copy the patient and study of those images. `source_series`
re-reads the headers (no pixel data) of the series that `io.dicom.read_dicom_series` read and
puts them in the order of the image's third voxel axis, found from each slice's position in the
image's own affine, so the outputs agree with the NIfTI result voxel for voxel however the files
are named or the slices are ordered.

Anonymised exports often blank the identifying UIDs (the shared example series has empty
SOPInstanceUID, SOPClassUID, StudyInstanceUID and SeriesInstanceUID). They are back-filled,
with one warning line, the way the reference tool's writer does: SOP instance and class from
each file's meta header, the rest derived deterministically from the SOP instance UIDs (the
same input gives the same UIDs on every run), so the references resolve and validators accept
the outputs.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.errors import DicomError, MissingDependencyError
from totalseg.image import Image

__all__ = ["SourceSeries", "require", "save_dataset", "source_series"]

_LOG = logging.getLogger(__name__)
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_ON_GRID_TOL = 0.05  # voxels: a slice position this close to a grid plane lies on it
_DERIVED = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")
# Type 2 patient and study attributes that the outputs copy: present (maybe empty) in each
_TYPE2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber",
)  # fmt: skip


@dataclass(frozen=True)
class SourceSeries:
    """The headers of the source slices; `datasets[k]` is slice k of the image grid."""

    datasets: tuple[Any, ...]

    @property
    def first(self) -> Any:
        return self.datasets[0]


def source_series(
    path: str | os.PathLike[str], image: Image, *, series_uid: str | None = None
) -> SourceSeries:
    """The headers of the series at `path` that `image` was read from, ordered along k."""
    pydicom = require("pydicom")
    where = Path(path)
    headers = [ds for ds in _headers(pydicom, where) if _has_geometry(ds)]
    groups: dict[str, list[Any]] = {}
    for ds in headers:
        groups.setdefault(str(ds.get("SeriesInstanceUID", "") or ""), []).append(ds)
    if series_uid is not None:
        chosen = groups.get(series_uid, [])
    else:
        chosen = next(iter(groups.values())) if len(groups) == 1 else []
    ordered = _order_along_k(chosen, image, where)
    _back_fill_uids(pydicom, ordered, where)
    for ds in ordered:  # type 2, needed for the SEG's pixel measures: the slice step if absent
        if not ds.get("SliceThickness"):
            ds.SliceThickness = round(image.spacing_mm[2], 6)
    return SourceSeries(tuple(ordered))


def require(module: str) -> Any:
    """Import a module of the `dicom` extra (pydicom, highdicom) or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"Expected {module} to read or write DICOM, got no module {module!r}; "
            'install the extra: pip install "totalseg[dicom]"'
        ) from exc


def _headers(pydicom: Any, where: Path) -> Iterator[Any]:
    """Every readable DICOM header under a folder or in a zip (non-DICOM files skipped)."""
    if where.is_dir():
        for file in sorted(p for p in where.rglob("*") if p.is_file()):
            ds = _read(pydicom, str(file))
            if ds is not None:
                yield ds
        return
    with zipfile.ZipFile(where) as archive:
        for info in archive.infolist():
            if not info.is_dir():
                ds = _read(pydicom, io.BytesIO(archive.read(info.filename)))
                if ds is not None:
                    yield ds


def _read(pydicom: Any, source: str | io.BytesIO) -> Any | None:
    try:
        return pydicom.dcmread(source, stop_before_pixels=True, force=True)
    except Exception:  # not DICOM (the image reader has already refused broken slices)
        return None


def _has_geometry(ds: Any) -> bool:
    try:
        return all(ds.get(k) not in (None, "") for k in ("ImagePositionPatient", "Rows"))
    except Exception:
        return False


def _order_along_k(headers: Sequence[Any], image: Image, where: Path) -> list[Any]:
    n_slices = image.shape[2]
    to_voxel = np.linalg.inv(_RAS_TO_LPS @ image.affine)
    by_k: dict[int, Any] = {}
    for ds in headers:
        ijk = (to_voxel @ [*(float(v) for v in ds.ImagePositionPatient), 1.0])[:3]
        k = round(float(ijk[2]))
        on_grid = np.abs(ijk - [0.0, 0.0, k]).max() < _ON_GRID_TOL
        if on_grid and 0 <= k < n_slices and k not in by_k:
            by_k[k] = ds
    if len(by_k) != n_slices:
        raise DicomError(
            f"Expected the {n_slices} source slices of the segmented series in '{where}', "
            f"found {len(by_k)} on its grid; pass the DICOM folder or zip the image was read "
            "from (and the same --series)."
        )
    return [by_k[k] for k in range(n_slices)]


def _back_fill_uids(pydicom: Any, datasets: Sequence[Any], where: Path) -> None:
    """Fill in blank identifying UIDs in place; one warning names what was filled."""
    filled: list[str] = []
    for ds in datasets:
        meta = getattr(ds, "file_meta", None)
        for keyword, meta_keyword in (
            ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
            ("SOPClassUID", "MediaStorageSOPClassUID"),
        ):
            if not ds.get(keyword):
                value = meta.get(meta_keyword) if meta is not None else None
                setattr(ds, keyword, value or _derived(pydicom, datasets, keyword, ds))
                filled.append(keyword)
    for keyword in _DERIVED:
        values = {str(ds.get(keyword, "") or "") for ds in datasets}
        if values == {""} or (keyword == "SeriesInstanceUID" and "" in values):
            uid = _derived(pydicom, datasets, keyword, None)
            for ds in datasets:
                setattr(ds, keyword, uid)
            filled.append(keyword)
    for ds in datasets:
        for keyword in _TYPE2:
            if keyword not in ds:
                setattr(ds, keyword, "")
    if filled:
        _LOG.warning(
            "The DICOM series in '%s' lacks %s; filled in (from the file meta header or derived "
            "from the SOP instance UIDs) so that the outputs can reference it.",
            where, ", ".join(sorted(set(filled))),
        )  # fmt: skip


def _derived(pydicom: Any, datasets: Sequence[Any], keyword: str, ds: Any) -> str:
    """A UID derived from the series' SOP instance UIDs (the same on every run)."""
    if keyword == "SOPClassUID":
        return str(pydicom.uid.CTImageStorage)
    seeds = [str(d.get("SOPInstanceUID", "") or "") for d in datasets]
    if ds is not None:
        seeds.append(str(ds.get("ImagePositionPatient", "")))
    return str(pydicom.uid.generate_uid(entropy_srcs=[keyword, *seeds]))


def save_dataset(dataset: Any, path: Path) -> Path:
    """Write a DICOM file next to the target and rename: no half-written file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        dataset.save_as(partial, enforce_file_format=True)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path
