"""DICOM files: the sources of a series (a folder searched recursively, or the members of a
zip read through the guarded archive reader), one dataset read from a source, and the
slice header (geometry and rescale tags) taken from it."""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.errors import DicomError, ImageFileError, MissingDependencyError
from totalseg.io.archive import ArchiveLimits, GuardedZip, is_zip

__all__ = [
    "SliceHeader",
    "Source",
    "header_from_dataset",
    "open_sources",
    "read_dataset",
    "require_pydicom",
]

_LOG = logging.getLogger(__name__)
#: one DICOM slice in a zip may inflate to this many GB (raise with $TOTALSEG_ZIP_MAX_MEMBER_GB)
MAX_SLICE_GB = 0.25
_MAX_NAMED = 5  # slices named in one error message


@dataclass(frozen=True, eq=False)
class Source:
    """One file, on disk or a member of an open (guarded) zip archive; `name` is shown in
    messages."""

    name: str
    path: Path
    archive: GuardedZip | None = None
    member: zipfile.ZipInfo | None = None

    def open(self) -> str | io.BytesIO:
        if self.archive is None or self.member is None:
            return str(self.path)
        return io.BytesIO(self.archive.read(self.member))

    def head(self, n_bytes: int) -> bytes:
        source = self.open()
        if isinstance(source, io.BytesIO):
            return source.read(n_bytes)
        with open(source, "rb") as f:
            return f.read(n_bytes)


@dataclass(frozen=True)
class SliceHeader:
    source: Source
    series_uid: str
    modality: str
    description: str
    rows: int
    columns: int
    n_frames: int
    orientation: tuple[float, ...]  # 6 direction cosines (row, column), LPS
    position_mm: tuple[float, ...]  # ImagePositionPatient, LPS
    pixel_spacing_mm: tuple[float, ...] | None  # (row spacing, column spacing)
    slope: float
    intercept: float


def require_pydicom() -> Any:
    try:
        import pydicom
    except ImportError as exc:
        raise MissingDependencyError(
            "Expected pydicom to read DICOM, got no module 'pydicom'; "
            'install the extra: pip install "totalseg[dicom]"'
        ) from exc
    return pydicom


@contextmanager
def open_sources(path: Path) -> Iterator[list[Source]]:
    if not path.exists():
        raise ImageFileError(
            f"Expected a DICOM folder or .zip archive, got a path that does not exist: '{path}'; "
            "check the path."
        )
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        yield [Source(p.relative_to(path).as_posix(), p) for p in files]
        return
    if not is_zip(path):
        raise DicomError(
            f"Expected a DICOM folder or a .zip archive, got '{path}', which is neither; "
            "pass the folder that holds the series."
        )
    limits = ArchiveLimits.from_env(member_gb=MAX_SLICE_GB)
    with GuardedZip(path, limits=limits, error=DicomError) as archive:
        members = sorted(archive.members, key=lambda i: i.filename)
        yield [Source(i.filename, path, archive, i) for i in members]


def read_dataset(pydicom: Any, source: Source, *, stop_before_pixels: bool) -> Any | None:
    """The dataset, or None when the file is not DICOM."""
    try:
        return pydicom.dcmread(source.open(), stop_before_pixels=stop_before_pixels)
    except pydicom.errors.InvalidDicomError:
        pass  # no 'DICM' preamble: maybe a raw (preamble-less) DICOM file, tried below
    except Exception as exc:  # a file with a DICOM preamble that pydicom cannot parse
        raise DicomError(
            f"Expected a readable DICOM file, got {one_line(exc)} ('{source.name}' "
            f"in '{source.path}'); remove or replace the file."
        ) from exc
    if source.head(2) not in (b"\x08\x00", b"\x02\x00"):  # raw files start with group 8 or 2
        return None
    try:
        ds = pydicom.dcmread(source.open(), stop_before_pixels=stop_before_pixels, force=True)
    except Exception as exc:  # forced reads of non-DICOM data fail in many ways
        _LOG.debug("'%s' is not DICOM: %s", source.name, exc)
        return None
    if "TransferSyntaxUID" not in ds.file_meta:  # no meta header: keep the encoding it was read in
        implicit, little = ds.original_encoding
        uid = pydicom.uid
        syntax = uid.ImplicitVRLittleEndian if implicit else uid.ExplicitVRLittleEndian
        ds.file_meta.TransferSyntaxUID = syntax if little else uid.ExplicitVRBigEndian
    return ds


def header_from_dataset(ds: Any, source: Source) -> SliceHeader | None:
    """The slice header, or None for DICOM files without image geometry (DICOMDIR, SR, ...)."""
    required = ("Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient")
    try:  # pydicom parses elements lazily: a corrupt one fails here, on first access
        if any(ds.get(keyword) in (None, "") for keyword in required):
            return None
        spacing = _floats(ds, "PixelSpacing", 2, source) if "PixelSpacing" in ds else None
        return SliceHeader(
            source=source,
            series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
            modality=str(ds.get("Modality", "") or ""),
            description=str(ds.get("SeriesDescription", "") or ""),
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            n_frames=int(ds.get("NumberOfFrames", 1) or 1),
            orientation=_floats(ds, "ImageOrientationPatient", 6, source),
            position_mm=_floats(ds, "ImagePositionPatient", 3, source),
            pixel_spacing_mm=spacing,
            slope=float(ds.get("RescaleSlope", 1.0) or 1.0),
            intercept=float(ds.get("RescaleIntercept", 0.0) or 0.0),
        )
    except DicomError:
        raise
    except Exception as exc:
        raise DicomError(
            f"Expected valid image tags, got {one_line(exc)} ('{source.name}'); "
            "the file is malformed: remove or replace it."
        ) from exc


def _floats(ds: Any, keyword: str, n: int, source: Source) -> tuple[float, ...]:
    value = ds.get(keyword)
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(values) != n:
        raise DicomError(
            f"Expected {n} values in {keyword}, got {len(values)} ('{source.name}'); "
            "the file is malformed."
        )
    numbers = tuple(float(v) for v in values)
    if not all(np.isfinite(numbers)):
        raise DicomError(
            f"Expected finite numbers in {keyword}, got {fmt(numbers)} ('{source.name}'); the "
            "slice cannot be placed in space: remove it or export the series again."
        )
    return numbers


def names(headers: Sequence[SliceHeader]) -> str:
    named = ", ".join(f"'{h.source.name}'" for h in headers[:_MAX_NAMED])
    return named + (f" and {len(headers) - _MAX_NAMED} more" if len(headers) > _MAX_NAMED else "")


def fmt(values: Any) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in np.ravel(values)) + ")"


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())
