"""File input/output: the only layer that touches image files.

`read_any` opens what users pass on the command line: a NIfTI file, a DICOM series folder or a
zip of one.
"""

from __future__ import annotations

import os
from pathlib import Path

from totalseg.errors import ImageFileError
from totalseg.image import Image
from totalseg.io.nifti import (
    PHANTOM_DESCRIPTION,
    encode_nifti,
    is_nifti_path,
    is_phantom_file,
    read_header,
    read_image,
    read_label_map,
    read_mask_folder,
    write_image,
    write_label_map,
    write_mask_folder,
)

__all__ = [
    "PHANTOM_DESCRIPTION",
    "encode_nifti",
    "is_dicom_source",
    "is_phantom_file",
    "read_any",
    "read_header",
    "read_image",
    "read_label_map",
    "read_mask_folder",
    "write_image",
    "write_label_map",
    "write_mask_folder",
]


def is_dicom_source(path: str | os.PathLike[str]) -> bool:
    """True for a folder or a .zip file (treated as a DICOM series)."""
    p = Path(path)
    return p.is_dir() or (p.is_file() and p.suffix.lower() == ".zip")


def read_any(path: str | os.PathLike[str], *, series_uid: str | None = None) -> Image:
    """Read a CT volume from a NIfTI file, a DICOM series folder, or a zip of DICOM files."""
    p = Path(path)
    if not p.exists():
        raise ImageFileError(
            f"Expected a NIfTI file or a DICOM folder/zip, got a path that does not exist: '{p}'."
        )
    if is_dicom_source(p):
        from totalseg.io.dicom import read_dicom_series

        return read_dicom_series(p, series_uid=series_uid)
    if is_nifti_path(p):
        return read_image(p)
    raise ImageFileError(
        f"Expected a .nii/.nii.gz file, a DICOM folder or a .zip of DICOM files, got '{p}'."
    )
