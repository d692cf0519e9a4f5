"""Checks of a NIfTI header before its voxels are loaded, and nibabel's own messages captured.

* The voxel count the header claims must fit in the file (an uncompressed .nii holds
  `vox_offset + n_voxels * itemsize` bytes; deflate cannot pack more than ~1032 bytes into one,
  which bounds a .nii.gz), stay under `TOTALSEG_MAX_VOXELS` (default 2^31, e.g.
  1024 x 1024 x 2048) and fit, as float32, in the memory available now.
* nibabel logs its header fixes (zero or negative pixdim, ...) on its own stream handler, once
  per read; they are captured here and turned into at most one warning line of ours.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib

from totalseg.errors import ImageFileError, InputError

__all__ = ["MAX_VOXELS_ENV", "available_memory_bytes", "captured_nibabel_log", "check_size"]

MAX_VOXELS_ENV = "TOTALSEG_MAX_VOXELS"
_DEFAULT_MAX_VOXELS = 2**31
_DEFLATE_MAX_RATIO = 1032  # the most bytes one compressed deflate byte can expand to


def _max_voxels() -> int:
    raw = os.environ.get(MAX_VOXELS_ENV, "").strip()
    if not raw:
        return _DEFAULT_MAX_VOXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(
            f"Expected a positive voxel count in ${MAX_VOXELS_ENV}, got {raw!r}; fix or unset it."
        )
    return value


def available_memory_bytes() -> int | None:
    """Memory available to new allocations now (Linux MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_size(img: nib.Nifti1Image, path: Path) -> None:
    """Refuse a header whose voxel count cannot be in the file or cannot be loaded."""
    shape = tuple(int(n) for n in img.shape)
    n_voxels = math.prod(shape)
    claimed = n_voxels * img.get_data_dtype().itemsize
    file_bytes = path.stat().st_size
    offset = int(img.header["vox_offset"]) if "vox_offset" in img.header else 352
    gz = path.name.lower().endswith(".gz")
    holds = file_bytes * _DEFLATE_MAX_RATIO if gz else file_bytes - offset
    dims = "x".join(map(str, shape))
    if claimed > holds:
        raise ImageFileError(
            f"Expected voxel data for the {dims} voxels the header of '{path}' claims "
            f"({claimed:,} bytes), got a file of {file_bytes:,} bytes; the file is truncated or "
            "corrupt (or its header is wrong): export it again."
        )
    limit = _max_voxels()
    if n_voxels > limit:
        raise InputError(
            f"Expected at most {limit:,} voxels, got {dims} = {n_voxels:,} in '{path}'; crop or "
            f"downsample it, or raise the limit with ${MAX_VOXELS_ENV}."
        )
    needed = n_voxels * max(img.get_data_dtype().itemsize, 4)
    available = available_memory_bytes()
    if available is not None and needed > available:
        raise InputError(
            f"Expected {dims} voxels to fit in memory ({needed / 2**30:.1f} GiB as float32), got "
            f"{available / 2**30:.1f} GiB available ('{path}'); free memory or crop the image."
        )


class _Capture(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.messages.append(record.getMessage())
        return False  # dropped: neither nibabel's handler nor ours prints it


@contextmanager
def captured_nibabel_log() -> Iterator[list[str]]:
    """nibabel's header messages of the block, collected instead of printed."""
    logger = logging.getLogger("nibabel.global")
    capture = _Capture()
    logger.addFilter(capture)
    try:
        yield capture.messages
    finally:
        logger.removeFilter(capture)
