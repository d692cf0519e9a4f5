"""Finding and loading the cases of a prediction or reference folder.

Accepted layouts (the same for predictions and references), one entry per case:

- `ROOT/<case>.nii.gz` (or `.nii`): one multilabel file; label names from its XML label table
  when present, else from the v1 or v2 class map;
- `ROOT/<case>/segmentations/<structure>.nii.gz`: the public dataset layout (per-class masks);
- `ROOT/<case>/<structure>.nii.gz`: a per-class folder (the reference tool's default output).

`ROOT` may also be one NIfTI file (a single case). The case id is the folder name or the file
name without its NIfTI suffix (and without a `_seg` suffix, which `totalseg segment` adds to the
multilabel outputs of a batch); predictions and references are matched by case id.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from totalseg.anatomy import ClassMapVersion, class_map
from totalseg.errors import GeometryError, InputError
from totalseg.image import LabelMap
from totalseg.metrics.box import Box, bounding_box, label_boxes

__all__ = [
    "CaseEntry",
    "CaseMasks",
    "discover_cases",
    "load_case",
    "masks_from_label_map",
    "split_case_ids",
    "structure_names",
]

log = logging.getLogger(__name__)

_SUFFIXES = (".nii.gz", ".nii")
_SEG_SUFFIX = "_seg"
Kind = Literal["multilabel", "masks"]


@dataclass(frozen=True)
class CaseEntry:
    """Where one case's segmentation lives: a multilabel file or a folder of per-class masks."""

    case_id: str
    path: Path
    kind: Kind


def _strip_suffix(name: str) -> str | None:
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _mask_files(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        stem = _strip_suffix(p.name)
        if stem and p.is_file() and not p.name.startswith("."):
            out.setdefault(stem, p)
    return out


def _folder_entry(folder: Path) -> CaseEntry | None:
    segs = folder / "segmentations"
    if segs.is_dir():
        return CaseEntry(folder.name, segs, "masks")
    if _mask_files(folder):
        return CaseEntry(folder.name, folder, "masks")
    return None


def discover_cases(
    root: str | os.PathLike[str], *, role: str = "prediction"
) -> dict[str, CaseEntry]:
    """Map case id -> entry for every case under `root` (see the module docstring)."""
    base = Path(root)
    if not base.exists():
        raise InputError(
            f"Expected a {role} folder or NIfTI file, got '{base}' which does not exist."
        )
    if base.is_file():
        stem = _strip_suffix(base.name)
        if stem is None:
            raise InputError(f"Expected a {role} folder or .nii/.nii.gz file, got '{base}'.")
        return {stem: CaseEntry(stem, base, "multilabel")}
    cases: dict[str, CaseEntry] = {}
    for p in sorted(base.iterdir()):
        if p.name.startswith("."):
            continue
        stem = _strip_suffix(p.name)
        if stem and stem.endswith(_SEG_SUFFIX):  # `segment`'s batch output `<case>_seg.nii.gz`
            stem = stem[: -len(_SEG_SUFFIX)]
        entry = CaseEntry(stem, p, "multilabel") if stem and p.is_file() else None
        if p.is_dir():
            entry = _folder_entry(p)
        if entry is None:
            continue
        if entry.case_id in cases:
            raise InputError(
                f"Expected one {role} per case, got both '{cases[entry.case_id].path}' and "
                f"'{entry.path}' for case {entry.case_id!r}; remove one of them."
            )
        cases[entry.case_id] = entry
    if not cases:
        raise InputError(
            f"Expected {role} cases in '{base}' (<case>.nii.gz multilabel files, <case>/ folders "
            "of <structure>.nii.gz masks, or <case>/segmentations/), found none."
        )
    return cases


_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def split_case_ids(root: str | os.PathLike[str], split: str) -> set[str]:
    """Case ids of one split ('train', 'val', 'test') from the dataset's `meta.csv`.

    `meta.csv` is the public dataset's ';'-separated table with `image_id` and `split` columns.
    """
    import csv

    wanted = _SPLIT_ALIASES.get(split.lower())
    if wanted is None:
        raise InputError(f"Expected a split train, val or test, got {split!r}.")
    meta = Path(root) / "meta.csv"
    if not meta.is_file():
        raise InputError(
            f"Expected '{meta}' (columns image_id;split) to select the {wanted} split, got no "
            "such file; drop --split or add the table."
        )
    with meta.open("r", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    if not rows or "image_id" not in rows[0] or "split" not in rows[0]:
        raise InputError(
            f"Expected columns image_id and split in '{meta}', got "
            f"{', '.join(rows[0]) if rows else 'no rows'}."
        )
    ids = {
        r["image_id"].strip()
        for r in rows
        if _SPLIT_ALIASES.get((r["split"] or "").strip().lower()) == wanted
    }
    if not ids:
        raise InputError(f"Expected cases of the {wanted} split in '{meta}', found none.")
    return ids


def _table_names(path: Path) -> dict[int, str]:
    from totalseg.io.labeltable import parse_label_table
    from totalseg.io.nifti import read_header

    for ext in read_header(path).extensions:
        table = parse_label_table(ext.get_content(), source=f"header of '{path}'")
        if table:
            return {k: v for k, v in table.items() if k > 0}
    return {}


def structure_names(entry: CaseEntry, *, version: ClassMapVersion) -> list[str]:
    """Names a case can hold: its mask files, its label table, or the class map's names."""
    if entry.kind == "masks":
        return list(_mask_files(entry.path))
    return list((_table_names(entry.path) or class_map(version)).values())


class CaseMasks:
    """The masks of one case, each with its bounding box, on one grid."""

    def __init__(self, source: str, affine: np.ndarray, shape: tuple[int, int, int]):
        self.source = source  # file or folder the masks came from (for messages)
        self.affine = np.asarray(affine, dtype=np.float64)
        self.shape = shape
        self._array: np.ndarray | None = None
        self._ids: dict[str, int] = {}
        self._boxes: dict[str, Box | None] = {}
        self._crops: dict[str, np.ndarray] = {}

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        norms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return (float(norms[0]), float(norms[1]), float(norms[2]))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def box(self, name: str) -> Box | None:
        """Bounding box of a structure; None when it is empty in this case."""
        return self._boxes[name]

    def mask_in(self, name: str, box: Box) -> np.ndarray:
        """Boolean mask of a structure inside `box` (which may extend past its own box)."""
        if self._array is not None:
            return np.asarray(self._array[box] == self._ids[name])
        out = np.zeros(tuple(s.stop - s.start for s in box), dtype=bool)
        own = self._boxes[name]
        if own is None:
            return out
        lo = [max(b.start, o.start) for b, o in zip(box, own, strict=True)]
        hi = [min(b.stop, o.stop) for b, o in zip(box, own, strict=True)]
        if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
            return out
        dst = tuple(slice(a - b.start, z - b.start) for a, z, b in zip(lo, hi, box, strict=True))
        src = tuple(slice(a - o.start, z - o.start) for a, z, o in zip(lo, hi, own, strict=True))
        out[dst] = self._crops[name][src]
        return out


def masks_from_label_map(
    label_map: LabelMap,
    names: Sequence[str],
    *,
    version: ClassMapVersion = "v2",
    source: str = "label map",
    role: str = "label map",
) -> CaseMasks:
    """Masks of `names` in a multilabel map; ids from its labels, else the class map."""
    table = {k: v for k, v in label_map.labels.items() if k > 0} or class_map(version)
    array = np.asarray(label_map.array)
    boxes = label_boxes(array)
    unknown = sorted(set(boxes) - set(table))
    if unknown:
        raise InputError(
            f"Expected label values of the {version} class map ({len(class_map(version))} "
            f"classes), got {unknown[:5]} in {role} '{source}'; pass the right class map "
            "(--class-map v1|v2) or write the file with a label table."
        )
    ids = {name: i for i, name in table.items()}
    missing = [n for n in names if n not in ids]
    if missing:
        raise InputError(
            f"Expected the {role} '{source}' to hold {', '.join(missing[:5])}, got a label "
            f"map without {'them' if len(missing) > 1 else 'it'}; choose other --structures or "
            "the matching --class-map."
        )
    masks = CaseMasks(source, label_map.affine, label_map.shape)
    masks._array = array
    masks._ids = {n: ids[n] for n in names}
    masks._boxes = {n: boxes.get(ids[n]) for n in names}
    return masks


Grid = tuple[tuple[int, int, int], np.ndarray]


def reorient_onto(label_map: LabelMap, grid: Grid | None) -> LabelMap:
    """The label map on `grid` (shape, affine) when it holds the same voxels in another axis
    order (axes permuted or flipped, e.g. LPS vs LAS; no resampling); otherwise unchanged (the
    grid check then reports the mismatch)."""
    from nibabel import orientations

    if grid is None:
        return label_map
    shape, affine = grid
    if label_map.shape == tuple(shape) and np.allclose(label_map.affine, affine, atol=1e-4):
        return label_map
    transform = orientations.ornt_transform(
        orientations.io_orientation(label_map.affine), orientations.io_orientation(affine)
    )
    array = orientations.apply_orientation(np.asarray(label_map.array), transform)
    moved = label_map.affine @ orientations.inv_ornt_aff(transform, label_map.shape)
    if array.shape != tuple(shape) or not np.allclose(moved, affine, atol=1e-4):
        return label_map
    return LabelMap(np.ascontiguousarray(array), moved, label_map.labels)


def _load_multilabel(
    entry: CaseEntry, names: list[str], version: ClassMapVersion, role: str, grid: Grid | None
) -> CaseMasks:
    from totalseg.io.nifti import read_label_map

    label_map = reorient_onto(read_label_map(entry.path), grid)
    return masks_from_label_map(
        label_map, names, version=version, source=str(entry.path), role=role
    )


def _load_mask_folder(
    entry: CaseEntry, names: list[str], role: str, grid: Grid | None
) -> CaseMasks:
    from totalseg.io.nifti import read_label_map

    files = _mask_files(entry.path)
    missing = [n for n in names if n not in files]
    if missing:
        raise InputError(
            f"Expected mask files {', '.join(f'{n}.nii.gz' for n in missing[:5])} in the {role} "
            f"folder '{entry.path}', found none; add them or choose other --structures."
        )
    masks: CaseMasks | None = None
    for name in names:
        label_map = reorient_onto(read_label_map(files[name], labels={}), grid)
        if masks is None:
            masks = CaseMasks(str(entry.path), label_map.affine, label_map.shape)
        elif label_map.shape != masks.shape or not np.allclose(
            label_map.affine, masks.affine, atol=1e-4
        ):
            raise GeometryError(
                f"Expected every mask of case {entry.case_id!r} on one grid (shape "
                f"{masks.shape}), got shape {label_map.shape} for '{files[name]}'; "
                "resample the masks onto one grid."
            )
        mask = np.asarray(label_map.array) != 0
        box = bounding_box(mask)
        masks._boxes[name] = box
        if box is not None:
            masks._crops[name] = mask[box].copy()
    if masks is None:
        raise InputError(f"Expected at least one structure to load from '{entry.path}', got none.")
    return masks


def load_case(
    entry: CaseEntry,
    names: list[str],
    *,
    version: ClassMapVersion,
    role: str,
    grid: Grid | None = None,
) -> CaseMasks:
    """Load the masks `names` of one case (a multilabel file or a per-class folder); with
    `grid`, masks on the same physical grid in another axis order are reoriented onto it."""
    if entry.kind == "multilabel":
        return _load_multilabel(entry, names, version, role, grid)
    return _load_mask_folder(entry, names, role, grid)
