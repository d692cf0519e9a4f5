"""A segmentation as one LabelMap: a multilabel NIfTI, or a folder of per-class masks.

A folder holds one binary mask per structure, `<name>.nii.gz` (or `.nii`), like the reference
tool's default output and the public dataset's `segmentations/` folders. Structures of the v2
class map keep their v2 ids; other names get ids after the largest v2 id, in name order. Every
file becomes a named label, so an empty mask is reported as `absent` rather than forgotten;
where masks overlap, the higher id wins (`totalseg.io.read_mask_folder`).
"""

from __future__ import annotations

import os
from pathlib import Path

from totalseg.errors import ImageFileError
from totalseg.image import LabelMap

__all__ = ["mask_files", "read_segmentation"]

_SUFFIXES = (".nii.gz", ".nii")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def mask_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """{structure name: mask file} of a folder of per-class NIfTI masks, names sorted."""
    root = Path(folder)
    files = sorted(p for p in root.iterdir() if p.is_file() and p.name.endswith(_SUFFIXES))
    if not files:
        raise ImageFileError(
            f"Expected per-class masks (<name>.nii.gz) in folder '{root}', got none; "
            "pass a multilabel NIfTI file or a folder of masks."
        )
    return {_stem(p): p for p in files}


def _ids_for(names: list[str]) -> dict[str, int]:
    from totalseg.anatomy import class_map

    v2 = {name: i for i, name in class_map("v2").items()}
    next_id = max(v2.values()) + 1
    ids = {}
    for name in names:
        if name in v2:
            ids[name] = v2[name]
        else:
            ids[name] = next_id
            next_id += 1
    return ids


def read_segmentation(path: str | os.PathLike[str]) -> LabelMap:
    """Read a multilabel NIfTI (with its label table) or a folder of per-class masks."""
    from totalseg.io.nifti import read_label_map, read_mask_folder

    p = Path(path)
    if not p.exists():
        raise ImageFileError(
            f"Expected a segmentation file or folder, got nothing at '{p}'; check the path."
        )
    if p.is_file():
        return read_label_map(p)
    ids = _ids_for(list(mask_files(p)))
    return read_mask_folder(p, {i: name for name, i in ids.items()}, missing_ok=False)
