"""NIfTI reading and writing (nibabel). The only module that touches NIfTI files.

Reads accept 3D volumes (and 4D with a single volume); writes are atomic (temp file in the
target folder, then rename), keep the source header (codes, units, descriptions) when given one,
and carry the reference tool's XML label table on multilabel files.
"""

from __future__ import annotations

import gzip
import logging
import os
import warnings
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from totalseg.errors import ImageFileError, InputError
from totalseg.image import Image, LabelMap
from totalseg.io.labeltable import label_table_xml, parse_label_table
from totalseg.io.nifti_checks import captured_nibabel_log, check_size
from totalseg.io.outputs import atomic_file, atomic_folder, output_errors

__all__ = [
    "PHANTOM_DESCRIPTION",
    "HeaderSource",
    "encode_nifti",
    "image_from_nifti",
    "is_nibabel_image",
    "is_nifti_path",
    "is_phantom_file",
    "read_header",
    "read_image",
    "read_label_map",
    "read_mask_folder",
    "write_image",
    "write_label_map",
    "write_mask_folder",
]

log = logging.getLogger(__name__)

HeaderSource = nib.Nifti1Header | str | os.PathLike[str] | None
_NIFTI_SUFFIXES = (".nii", ".nii.gz")

#: the NIfTI `descrip` of every CT that totalseg's phantom generator writes: how a synthetic
#: scan is told from a real one (e.g. to warn when the phantom-trained demo model sees real CT)
PHANTOM_DESCRIPTION = "totalseg synthetic phantom"


def is_nifti_path(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(_NIFTI_SUFFIXES)


def _load(path: str | os.PathLike[str], *, for_data: bool = True) -> nib.Nifti1Image:
    """The image (voxels not read yet); with `for_data` its size is checked against the file
    and memory, and nibabel's header fixes become one warning line."""
    p = Path(path)
    if not p.exists():
        raise ImageFileError(f"Expected a NIfTI file, got a path that does not exist: '{p}'.")
    if p.is_dir():
        raise ImageFileError(
            f"Expected a NIfTI file, got a folder: '{p}'; pass a .nii/.nii.gz file "
            "(or a DICOM folder where DICOM is accepted)."
        )
    try:
        with captured_nibabel_log() as fixes:
            img = nib.load(p)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise ImageFileError(
            f"Expected a readable NIfTI file, got '{p}' which could not be opened ({exc}); "
            "check that it is a complete .nii/.nii.gz file."
        ) from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise ImageFileError(
            f"Expected a NIfTI file, got a {type(img).__name__} from '{p}'; convert it to NIfTI."
        )
    if for_data:
        check_size(img, p)
        if fixes:
            zooms = np.sqrt((np.asarray(img.affine)[:3, :3] ** 2).sum(axis=0))
            spacing = "x".join(f"{v:.3g}" for v in zooms)
            log.warning(
                "'%s': %s; using voxel spacing %s mm (check the header: volumes depend on it).",
                p, "; ".join(dict.fromkeys(fixes)), spacing,
            )  # fmt: skip
    return img


def _data(img: nib.Nifti1Image, path: str | os.PathLike[str]) -> np.ndarray:
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        pass
    elif len(shape) != 3:
        raise InputError(
            f"Expected a 3D volume, got shape {tuple(shape)} ({len(shape)}D) from '{path}'; "
            + (
                "pass a single 3D series."
                if len(shape) > 3
                else "a 2D slice cannot be segmented in 3D."
            )
        )
    try:
        with warnings.catch_warnings(record=True) as caught:  # e.g. overflow of scl_slope
            warnings.simplefilter("always")
            data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile) as exc:
        raise ImageFileError(
            f"Expected a complete NIfTI file, got '{path}' whose voxel data could not be read "
            f"({exc}); the file is truncated or corrupt."
        ) from exc
    for w in caught[:1]:  # non-finite results are refused by the plausibility check
        log.info("'%s': reading the voxels: %s", path, w.message)
    return np.asarray(data.reshape(shape[:3]))


def read_header(path: str | os.PathLike[str]) -> nib.Nifti1Header:
    """The NIfTI header of a file (no voxel data is read)."""
    return _load(path, for_data=False).header.copy()


def is_phantom_file(path: str | os.PathLike[str]) -> bool:
    """True for a NIfTI file written by totalseg's phantom generator (its `descrip` marker);
    False for anything else, DICOM series included."""
    if not is_nifti_path(path) or not Path(path).is_file():
        return False
    descrip = bytes(read_header(path)["descrip"].tobytes()).split(b"\0")[0]
    return descrip.decode("ascii", "replace").startswith(PHANTOM_DESCRIPTION)


def is_nibabel_image(obj: object) -> bool:
    """True for an in-memory nibabel NIfTI image (what the reference tool's API accepts)."""
    return isinstance(obj, nib.Nifti1Image | nib.Nifti2Image)


def image_from_nifti(img: nib.Nifti1Image, *, where: str = "the nibabel image") -> Image:
    """An Image from an in-memory nibabel NIfTI image (scaling applied, like reading a file)."""
    data = _data(img, where)
    if data.dtype.kind not in "iuf":
        raise InputError(
            f"Expected integer or floating-point voxels, got dtype {data.dtype} in {where}."
        )
    return Image(data, img.affine)


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read a 3D intensity volume (a 4D file with one volume is accepted)."""
    img = _load(path)
    data = _data(img, path)
    if data.dtype.kind not in "iuf":
        raise InputError(
            f"Expected integer or floating-point voxels, got dtype {data.dtype} from '{path}'."
        )
    return Image(data, img.affine)


def read_label_map(
    path: str | os.PathLike[str], *, labels: Mapping[int, str] | None = None
) -> LabelMap:
    """Read a label map; names come from `labels`, else from the file's XML label table."""
    img = _load(path)
    data = _data(img, path)
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise InputError(
                f"Expected integer labels, got non-integer values in '{path}'; "
                "is this an intensity image rather than a segmentation?"
            )
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        data = data.astype(np.result_type(np.min_scalar_type(lo), np.min_scalar_type(hi)))
    if labels is None:
        labels = {}
        for ext in img.header.extensions:
            labels = parse_label_table(ext.get_content(), source=f"header of '{path}'")
            if labels:
                break
    return LabelMap(data, img.affine, labels)


def _header_from(source: HeaderSource) -> nib.Nifti1Header:
    if source is None:
        return nib.Nifti1Header()
    if isinstance(source, nib.Nifti1Header):
        return source.copy()
    return read_header(source)


def _make_nifti(array: np.ndarray, affine: np.ndarray, source: HeaderSource) -> nib.Nifti1Image:
    header = _header_from(source)
    sform_code = int(header["sform_code"]) or 2
    qform_code = int(header["qform_code"])
    header.extensions.clear()
    img = nib.Nifti1Image(array, affine, header=header)
    img.set_data_dtype(array.dtype)
    img.header.set_slope_inter(np.nan, np.nan)
    img.set_sform(affine, code=sform_code)
    img.set_qform(affine, code=qform_code if source is not None else 1)
    if source is None:
        img.header.set_xyzt_units("mm", "sec")
    return img


def _atomic_save(img: nib.Nifti1Image, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if not is_nifti_path(target):
        raise ImageFileError(f"Expected an output path ending in .nii or .nii.gz, got '{target}'.")
    suffix = ".nii.gz" if str(target).lower().endswith(".gz") else ".nii"
    with atomic_file(target, suffix=suffix) as tmp:
        nib.save(img, tmp)
    return target


def write_image(
    image: Image,
    path: str | os.PathLike[str],
    *,
    header_from: HeaderSource = None,
    description: str | None = None,
) -> Path:
    """Write an Image atomically, keeping the header of `header_from` (a path or header);
    `description` sets the header's `descrip` (80 bytes at most)."""
    img = _make_nifti(np.asarray(image.array), image.affine, header_from)
    if description is not None:
        img.header["descrip"] = description.encode("ascii")[:80]
    return _atomic_save(img, path)


def _label_dtype(array: np.ndarray) -> np.ndarray:
    top = int(array.max()) if array.size else 0
    low = int(array.min()) if array.size else 0
    if low >= 0 and top <= 255:
        return array.astype(np.uint8, copy=False)
    if low >= 0 and top <= 65535:
        return array.astype(np.uint16, copy=False)
    return array.astype(np.int32, copy=False)


def write_label_map(
    label_map: LabelMap,
    path: str | os.PathLike[str],
    *,
    header_from: HeaderSource = None,
    label_table: bool = True,
) -> Path:
    """Write a multilabel map atomically (uint8 when ids fit) with the XML label table."""
    return _atomic_save(_label_nifti(label_map, header_from, label_table=label_table), path)


def _label_nifti(
    label_map: LabelMap, header_from: HeaderSource, *, label_table: bool
) -> nib.Nifti1Image:
    img = _make_nifti(_label_dtype(np.asarray(label_map.array)), label_map.affine, header_from)
    if label_table and label_map.labels:
        img.header.extensions.append(
            nib.nifti1.Nifti1Extension(0, label_table_xml(label_map.labels))
        )
    return img


def encode_nifti(volume: Image | LabelMap, *, compresslevel: int = 1) -> bytes:
    """The bytes of a .nii.gz file holding `volume`, made in memory, e.g. to send over HTTP.
    Label maps are uint8 when ids fit, carry the XML label table and the NIfTI label intent."""
    if isinstance(volume, LabelMap):
        img = _label_nifti(volume, None, label_table=True)
        img.header.set_intent("label")
    else:
        img = _make_nifti(np.asarray(volume.array), volume.affine, None)
    return gzip.compress(img.to_bytes(), compresslevel=compresslevel, mtime=0)


def write_mask_folder(
    label_map: LabelMap,
    folder: str | os.PathLike[str],
    *,
    labels: Mapping[int, str] | None = None,
    header_from: HeaderSource = None,
) -> list[Path]:
    """Write one uint8 0/1 mask per class, `<folder>/<name>.nii.gz` (empty classes included),
    into a temp folder beside `folder` that is renamed at the end (`io.outputs.atomic_folder`)."""
    names = dict(labels if labels is not None else label_map.labels)
    if not names:
        raise InputError("Expected label names to write per-class masks, got none.")
    header = _header_from(header_from)
    array = np.asarray(label_map.array)
    with atomic_folder(folder) as tmp:  # the folder appears complete or not at all
        for value, name in sorted(names.items()):
            mask = (array == value).astype(np.uint8)
            img = _make_nifti(mask, label_map.affine, header)
            with output_errors(folder):
                nib.save(img, tmp / f"{name}.nii.gz")
    return [Path(folder) / f"{name}.nii.gz" for _, name in sorted(names.items())]


def read_mask_folder(
    folder: str | os.PathLike[str],
    labels: Mapping[int, str],
    *,
    missing_ok: bool = True,
) -> LabelMap:
    """Combine per-class masks `<folder>/<name>.nii.gz` into one label map with ids `labels`.

    Where masks overlap, the higher id wins. Missing files are empty classes unless
    `missing_ok=False`. All masks must share one grid.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageFileError(f"Expected a folder of per-class masks, got '{root}'.")
    result: np.ndarray | None = None
    ref: LabelMap | None = None
    for value, name in sorted(labels.items()):
        path = _mask_path(root, name)
        if path is None:
            if not missing_ok:
                raise ImageFileError(f"Expected a mask file for {name!r} in '{root}', found none.")
            continue
        mask = read_label_map(path, labels={})
        if ref is None:
            ref, result = mask, np.zeros(mask.shape, dtype=_id_dtype(labels.keys()))
        ref.check_same_grid(mask, what=f"mask '{path.name}'")
        assert result is not None
        result[np.asarray(mask.array) > 0] = value
    if ref is None or result is None:
        raise ImageFileError(
            f"Expected per-class masks named like '<structure>.nii.gz' in '{root}', found none "
            f"of the {len(labels)} expected classes."
        )
    return LabelMap(result, ref.affine, dict(labels))


def _mask_path(root: Path, name: str) -> Path | None:
    for suffix in (".nii.gz", ".nii", ""):
        p = root / f"{name}{suffix}"
        if p.is_file():
            return p
    return None


def _id_dtype(ids: Iterable[int]) -> np.dtype:
    return np.dtype(np.uint8) if max(ids, default=0) <= 255 else np.dtype(np.uint16)
