"""Helpers of the bad-input corpus: CT-like arrays, NIfTI writing, a file-tree snapshot."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

TINY_ARCH = {
    "features_per_stage": (4, 8),
    "strides": ((1, 1, 1), (2, 2, 2)),
    "kernel_sizes": ((3, 3, 3),) * 2,
}
SHAPE = (24, 20, 18)
AFFINE = np.diag([-1.5, -1.5, 2.0, 1.0])


def ct_array(shape=SHAPE, seed: int = 0) -> np.ndarray:
    """CT-like int16: air around a soft-tissue body with a dense blob, a little noise."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    body = (grid**2).sum(0) < 0.8
    ct = np.where(body, 40.0, -1000.0)
    ct[(grid**2).sum(0) < 0.1] = 700.0
    ct += rng.normal(0, 10, size=shape)
    return ct.astype(np.int16)


def save_nifti(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE, **header) -> Path:
    img = nib.Nifti1Image(array, affine, dtype=array.dtype)
    for key, value in header.items():
        img.header[key] = value
    nib.save(img, path)
    return path


@dataclass(frozen=True)
class Outcome:
    rc: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root` with (size, mtime_ns) (folders: (-1, 0))."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root) + "/"] = (-1, 0)
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return out


def write_dicom_series(folder: Path, *, n: int = 8, size: int = 16, **tags: object) -> list[Path]:
    """An axial CT series (air around a body, HU via intercept -1024), one file per slice,
    slice k at z = 2.5 k mm; `tags` are set on every slice."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    volume = np.clip(ct_array((size, size, n)).astype(np.int32) + 1024, 0, None)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID = "CT", "1.2.826.0.1.3680043.8.498.7"
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.ImagePositionPatient = [0.0, 0.0, 2.5 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [1.5, 1.5]
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.PixelData = volume[:, :, k].T.astype("<u2").tobytes()
        path = folder / f"IM{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
