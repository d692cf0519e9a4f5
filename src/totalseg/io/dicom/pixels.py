"""DICOM pixel decoding: the sorted slices in HU (int16 when exact, else float32)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from totalseg.errors import DicomError
from totalseg.io.dicom.files import SliceHeader, one_line, read_dataset

__all__ = ["decode_volume"]

_LOG = logging.getLogger(__name__)


def decode_volume(pydicom: Any, ordered: Sequence[SliceHeader]) -> np.ndarray:
    """The sorted slices in HU, shape (slices, rows, columns); int16 when exact, else float32."""
    exact = all(h.slope == 1.0 and h.intercept.is_integer() for h in ordered)
    shape = (len(ordered), ordered[0].rows, ordered[0].columns)
    volume = np.empty(shape, dtype=np.int16 if exact else np.float32)
    for k, header in enumerate(ordered):
        volume = _store_hu(volume, k, _decode_pixels(pydicom, header), header)
    return volume


def _decode_pixels(pydicom: Any, header: SliceHeader) -> np.ndarray:
    name = header.source.name
    with warnings.catch_warnings(record=True) as caught:  # pydicom warns on truncated data
        warnings.simplefilter("always")
        ds = read_dataset(pydicom, header.source, stop_before_pixels=False)
        if ds is None:  # read as DICOM moments ago: the file changed under us
            raise DicomError(f"Expected a DICOM file, got unreadable '{name}'.")
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        try:
            pixels = np.asarray(ds.pixel_array)
        except Exception as exc:  # decoder missing or corrupt data: re-raised with the file named
            raise _pixel_error(exc, [str(w.message) for w in caught], name, syntax) from exc
    for w in caught:
        _LOG.debug("'%s': %s", name, w.message)
    if pixels.shape != (header.rows, header.columns):
        raise DicomError(
            f"Expected a {header.rows}x{header.columns} grey-scale slice, got pixel data of shape "
            f"{pixels.shape} ('{header.source.name}'); only single-frame grey-scale CT is read."
        )
    return pixels


def _pixel_error(exc: Exception, caught: list[str], name: str, syntax: object) -> DicomError:
    text = " ".join([one_line(exc), *caught])
    if "missing dependencies" in text or "requires" in text:
        return DicomError(
            f"Expected decodable pixel data, got no decoder for transfer syntax {syntax} "
            f"('{name}': {one_line(exc)}); install the decoders with "
            'pip install "totalseg[dicom]" or convert the series with dcm2niix.'
        )
    detail = caught[0] if caught else one_line(exc)
    return DicomError(
        f"Expected decodable pixel data, got truncated or corrupt pixel data in '{name}' "
        f"(transfer syntax {syntax}; {' '.join(detail.split())[:200]}); export the series "
        "again or remove that slice."
    )


def _store_hu(volume: np.ndarray, k: int, pixels: np.ndarray, header: SliceHeader) -> np.ndarray:
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
