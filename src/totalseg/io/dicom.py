"""DICOM CT series input: a folder (searched recursively) or a .zip archive -> `Image` in HU.

Geometry follows the DICOM standard, converted to NIfTI conventions at this boundary only:

* slices are sorted by their position along the slice normal (the cross product of the two
  ImageOrientationPatient direction cosines), never by InstanceNumber or file name;
* the slice spacing comes from the positions (SliceThickness is ignored); in-plane spacing from
  PixelSpacing, which is (row spacing, column spacing) -- the distance between rows is the
  spacing along a column;
* voxel (i, j, k) is column i, row j of the k-th sorted slice, the same grid dicom2nifti and
  dcm2niix produce (up to axis flips); the affine maps it to RAS millimetres (DICOM is LPS).

Modality: a non-CT series is read with a logged warning rather than refused, because the
reference tool also segments MR; the intensities are then not HU.
pydicom (and pylibjpeg for compressed transfer syntaxes) is imported lazily: the extra
`totalseg[dicom]` is needed only when DICOM is actually read.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from totalseg.errors import DicomError, ImageFileError, MissingDependencyError
from totalseg.image import Image

__all__ = ["SeriesInfo", "list_series", "read_dicom_series"]

_LOG = logging.getLogger(__name__)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_GAP_FACTOR = 1.5  # a step this many times the median step means a missing slice
_ORIENTATION_ATOL = 1e-4  # direction cosines
_SPACING_ATOL_MM = 1e-3
_TILT_TOLERANCE = 1e-3  # in-plane drift of the stack per mm along the normal (gantry tilt)
_MAX_MEMBER_BYTES = 2**31  # refuse zip members larger than this (zip bombs)
_MAX_NAMED = 5  # slices named in one error message


@dataclass(frozen=True)
class SeriesInfo:
    """One series found in a folder or archive."""

    series_uid: str
    modality: str
    n_slices: int
    description: str


@dataclass(frozen=True, eq=False)
class _Source:
    """One file, on disk or a member of an open zip archive; `name` is shown in messages."""

    name: str
    path: Path
    archive: zipfile.ZipFile | None = None

    def open(self) -> str | io.BytesIO:
        if self.archive is None:
            return str(self.path)
        try:
            return io.BytesIO(self.archive.read(self.name))
        except (zipfile.BadZipFile, OSError) as exc:
            raise DicomError(
                f"Expected a readable zip member, got {exc} ('{self.name}' in '{self.path}'); "
                "re-create the archive."
            ) from exc

    def head(self, n_bytes: int) -> bytes:
        source = self.open()
        if isinstance(source, io.BytesIO):
            return source.read(n_bytes)
        with open(source, "rb") as f:
            return f.read(n_bytes)


@dataclass(frozen=True)
class _SliceHeader:
    source: _Source
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


# ---------------------------------------------------------------- public functions


def list_series(path: str | os.PathLike[str]) -> list[SeriesInfo]:
    """The image series in a DICOM folder or .zip archive, sorted by series UID."""
    pydicom = _require_pydicom()
    where = Path(path)
    with _open_sources(where) as sources:
        scan = _scan(pydicom, sources, where)
    _check_broken(scan, None)
    return [_series_info(uid, headers) for uid, headers in sorted(scan.groups.items())]


def read_dicom_series(path: str | os.PathLike[str], *, series_uid: str | None = None) -> Image:
    """Read one CT series (folder or .zip) as an Image in HU on a voxel->RAS affine.

    With several series present, `series_uid` chooses one (see `list_series`). The array is
    int16 when the rescale is exact in int16, else float32.
    """
    pydicom = _require_pydicom()
    where = Path(path)
    with _open_sources(where) as sources:
        scan = _scan(pydicom, sources, where)
        headers = scan.groups[_select_series(scan, series_uid, where)]
        _check_uniform_slices(headers, where)
        ordered, affine_lps = _stack_geometry(headers, where)
        _warn_if_not_ct(ordered, where)
        volume = _decode_volume(pydicom, ordered)
    image = Image(volume.transpose(2, 1, 0), _LPS_TO_RAS @ affine_lps)
    _LOG.debug("read %s: shape %s, spacing %s mm", where, image.shape, image.spacing_mm)
    return image


# ---------------------------------------------------------------- file discovery


def _require_pydicom() -> Any:
    try:
        import pydicom
    except ImportError as exc:
        raise MissingDependencyError(
            "Expected pydicom to read DICOM, got no module 'pydicom'; "
            'install the extra: pip install "totalseg[dicom]"'
        ) from exc
    return pydicom


@contextmanager
def _open_sources(path: Path) -> Iterator[list[_Source]]:
    if not path.exists():
        raise ImageFileError(
            f"Expected a DICOM folder or .zip archive, got a path that does not exist: '{path}'; "
            "check the path."
        )
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        yield [_Source(p.relative_to(path).as_posix(), p) for p in files]
        return
    if not zipfile.is_zipfile(path):
        raise DicomError(
            f"Expected a DICOM folder or a .zip archive, got '{path}', which is neither; "
            "pass the folder that holds the series."
        )
    with zipfile.ZipFile(path) as archive:
        yield _zip_sources(archive, path)


def _zip_sources(archive: zipfile.ZipFile, path: Path) -> list[_Source]:
    sources = []
    for info in archive.infolist():
        if info.is_dir():
            continue
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if not parts or parts[0] == "/" or ".." in parts or ":" in parts[0]:
            raise DicomError(
                f"Expected relative member names in the archive, got the unsafe name "
                f"{info.filename!r} in '{path}'; refusing the archive (path traversal)."
            )
        if info.file_size > _MAX_MEMBER_BYTES:
            raise DicomError(
                f"Expected DICOM slices under {_MAX_MEMBER_BYTES} bytes, got {info.file_size} "
                f"bytes for {info.filename!r} in '{path}'; refusing the archive."
            )
        sources.append(_Source(info.filename, path, archive))
    return sorted(sources, key=lambda s: s.name)


# ---------------------------------------------------------------- header grouping


@dataclass(frozen=True)
class _Scan:
    groups: dict[str, list[_SliceHeader]]  # image slices by SeriesInstanceUID, in file order
    broken: dict[str | None, list[DicomError]]  # unreadable files by series UID (None: unknown)


def _scan(pydicom: Any, sources: Sequence[_Source], where: Path) -> _Scan:
    """Headers of all image slices; non-DICOM files are skipped, unreadable ones set aside."""
    scan = _Scan({}, {})
    skipped: Counter[str] = Counter()
    for source in sources:
        ds = None
        try:
            ds = _read_dataset(pydicom, source, stop_before_pixels=True)
            header = None if ds is None else _header_from_dataset(ds, source)
        except DicomError as exc:
            scan.broken.setdefault(_series_uid_of(ds), []).append(exc)
            continue
        if header is None:
            reason = "not DICOM" if ds is None else "DICOM without image geometry"
            _LOG.debug("skipping '%s' in '%s': %s", source.name, where, reason)
            skipped[reason] += 1
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


def _read_dataset(pydicom: Any, source: _Source, *, stop_before_pixels: bool) -> Any | None:
    """The dataset, or None when the file is not DICOM."""
    try:
        return pydicom.dcmread(source.open(), stop_before_pixels=stop_before_pixels)
    except pydicom.errors.InvalidDicomError:
        pass  # no 'DICM' preamble: maybe a raw (preamble-less) DICOM file, tried below
    except Exception as exc:  # a file with a DICOM preamble that pydicom cannot parse
        raise DicomError(
            f"Expected a readable DICOM file, got {_one_line(exc)} ('{source.name}' "
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


def _header_from_dataset(ds: Any, source: _Source) -> _SliceHeader | None:
    """The slice header, or None for DICOM files without image geometry (DICOMDIR, SR, ...)."""
    required = ("Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient")
    try:  # pydicom parses elements lazily: a corrupt one fails here, on first access
        if any(ds.get(keyword) in (None, "") for keyword in required):
            return None
        spacing = _floats(ds, "PixelSpacing", 2, source) if "PixelSpacing" in ds else None
        return _SliceHeader(
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
            f"Expected valid image tags, got {_one_line(exc)} ('{source.name}'); "
            "the file is malformed: remove or replace it."
        ) from exc


def _floats(ds: Any, keyword: str, n: int, source: _Source) -> tuple[float, ...]:
    value = ds.get(keyword)
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(values) != n:
        raise DicomError(
            f"Expected {n} values in {keyword}, got {len(values)} ('{source.name}'); "
            "the file is malformed."
        )
    return tuple(float(v) for v in values)


def _series_info(uid: str, headers: Sequence[_SliceHeader]) -> SeriesInfo:
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
    groups: dict[str, list[_SliceHeader]], series_uid: str | None, where: Path
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


# ---------------------------------------------------------------- geometry


def _check_uniform_slices(headers: Sequence[_SliceHeader], where: Path) -> None:
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
            f"Expected PixelSpacing in every slice, got none in {_names(missing)} ('{where}'); "
            "the series cannot be placed in space."
        )
    _check_same(headers, lambda h: (h.rows, h.columns), "Rows, Columns", where, atol=0.0)
    _check_same(headers, lambda h: h.orientation, "ImageOrientationPatient", where)
    _check_same(headers, lambda h: h.pixel_spacing_mm, "PixelSpacing", where, atol=_SPACING_ATOL_MM)


def _check_same(
    headers: Sequence[_SliceHeader],
    key: Callable[[_SliceHeader], Any],
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
        got = ", ".join(f"'{h.source.name}' {_fmt(key(h))}" for h in odd[:_MAX_NAMED])
        raise DicomError(
            f"Expected the same {what} {_fmt(reference)} in every slice, got {len(odd)} "
            f"differing: {got}{' ...' if len(odd) > _MAX_NAMED else ''} ('{where}'); remove "
            "those slices or choose another series with --series."
        )


def _stack_geometry(
    headers: Sequence[_SliceHeader], where: Path
) -> tuple[list[_SliceHeader], np.ndarray]:
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


def _direction_cosines(header: _SliceHeader, where: Path) -> tuple[np.ndarray, np.ndarray]:
    row_cos = np.array(header.orientation[:3])
    col_cos = np.array(header.orientation[3:])
    norms = (np.linalg.norm(row_cos), np.linalg.norm(col_cos))
    if min(norms) < 1e-6 or abs(float(np.dot(row_cos, col_cos))) > 1e-3 * norms[0] * norms[1]:
        raise DicomError(
            f"Expected two orthogonal direction cosines in ImageOrientationPatient, got "
            f"{_fmt(header.orientation)} ('{header.source.name}' in '{where}'); the file is "
            "malformed."
        )
    return row_cos / norms[0], col_cos / norms[1]


def _check_steps(ordered: Sequence[_SliceHeader], offsets_mm: np.ndarray, where: Path) -> float:
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


def _warn_if_not_ct(headers: Sequence[_SliceHeader], where: Path) -> None:
    modality = _series_info(headers[0].series_uid, headers).modality
    if modality != "CT":
        msg = "Expected a CT series, got modality %r in '%s'; intensities are not HU."
        _LOG.warning(msg, modality, where)


# ---------------------------------------------------------------- pixel decoding


def _decode_volume(pydicom: Any, ordered: Sequence[_SliceHeader]) -> np.ndarray:
    """The sorted slices in HU, shape (slices, rows, columns); int16 when exact, else float32."""
    exact = all(h.slope == 1.0 and h.intercept.is_integer() for h in ordered)
    shape = (len(ordered), ordered[0].rows, ordered[0].columns)
    volume = np.empty(shape, dtype=np.int16 if exact else np.float32)
    for k, header in enumerate(ordered):
        volume = _store_hu(volume, k, _decode_pixels(pydicom, header), header)
    return volume


def _decode_pixels(pydicom: Any, header: _SliceHeader) -> np.ndarray:
    ds = _read_dataset(pydicom, header.source, stop_before_pixels=False)
    if ds is None:  # read as DICOM moments ago: the file changed under us
        raise DicomError(f"Expected a DICOM file, got unreadable '{header.source.name}'.")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
    try:
        pixels = np.asarray(ds.pixel_array)
    except Exception as exc:  # decoder missing or corrupt data: re-raised with the file named
        raise DicomError(
            f"Expected decodable pixel data, got {_one_line(exc)} "
            f"('{header.source.name}', transfer syntax {syntax}); install the decoders with "
            'pip install "totalseg[dicom]" or convert the series with dcm2niix.'
        ) from exc
    if pixels.shape != (header.rows, header.columns):
        raise DicomError(
            f"Expected a {header.rows}x{header.columns} grey-scale slice, got pixel data of shape "
            f"{pixels.shape} ('{header.source.name}'); only single-frame grey-scale CT is read."
        )
    return pixels


def _store_hu(volume: np.ndarray, k: int, pixels: np.ndarray, header: _SliceHeader) -> np.ndarray:
    """Write slice k in HU; switches the whole volume to float32 when int16 is not exact."""
    if volume.dtype == np.int16 and pixels.dtype.kind in "iu":
        hu = pixels.astype(np.int32) + int(header.intercept)
        if hu.size == 0 or (hu.min() >= -32768 and hu.max() <= 32767):
            volume[k] = hu
            return volume
    if volume.dtype != np.float32:
        _LOG.debug("HU values of '%s' do not fit int16; using float32", header.source.name)
        volume = volume.astype(np.float32)
    volume[k] = pixels.astype(np.float64) * header.slope + header.intercept
    return volume


def _names(headers: Sequence[_SliceHeader]) -> str:
    named = ", ".join(f"'{h.source.name}'" for h in headers[:_MAX_NAMED])
    return named + (f" and {len(headers) - _MAX_NAMED} more" if len(headers) > _MAX_NAMED else "")


def _fmt(values: Any) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in np.ravel(values)) + ")"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())
