"""Training datasets: the public dataset layout and nnU-Net raw datasets.

Public layout (the reference dataset)::

    DIR/sXXXX/ct.nii.gz
    DIR/sXXXX/segmentations/<structure>.nii.gz     one 0/1 mask per structure
    DIR/meta.csv                                   ';'-separated, columns image_id ... split

nnU-Net raw layout::

    DIR/dataset.json                               labels {name: id}, channel_names, file_ending
    DIR/imagesTr/<case>_0000.nii.gz, DIR/labelsTr/<case>.nii.gz
    DIR/imagesTs/..., DIR/labelsTs/...             optional, become the test split
    DIR/splits_final.json                          optional, fold 0 gives train/val

Split: the public layout takes `meta.csv`'s ``split`` column (train/val/test); nnU-Net raw takes
fold 0 of ``splits_final.json``. Without one, the **default split rule** applies: cases sorted by
id, the last ``max(1, round(n / 5))`` go to validation (none when there is only one case), the
rest to training.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from totalseg.anatomy import relabel, structures
from totalseg.errors import InputError
from totalseg.image import LabelMap

__all__ = [
    "DatasetLayout",
    "Split",
    "TrainingCase",
    "TrainingDataset",
    "default_split",
    "read_case_labels",
    "read_dataset",
]

log = logging.getLogger(__name__)

Split = Literal["train", "val", "test"]
DatasetLayout = Literal["public", "nnunet"]
_SPLITS: tuple[Split, ...] = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "validation": "val",
    "valid": "val",
    "test": "test",
    "testing": "test",
}


@dataclass(frozen=True)
class TrainingCase:
    """One image with its ground truth (a mask folder or one label-map file)."""

    case_id: str
    image_path: Path
    split: Split
    masks_dir: Path | None = None
    label_path: Path | None = None

    def input_files(self) -> list[Path]:
        """Every file the case's data depends on (keys the preprocessing cache)."""
        files = [self.image_path]
        if self.label_path is not None:
            files.append(self.label_path)
        if self.masks_dir is not None and self.masks_dir.is_dir():
            files += sorted(p for p in self.masks_dir.iterdir() if p.is_file())
        return files


@dataclass(frozen=True)
class TrainingDataset:
    """The cases of a dataset folder, its native label names and where its split came from."""

    root: Path
    layout: DatasetLayout
    cases: tuple[TrainingCase, ...]
    label_names: Mapping[int, str] = field(default_factory=dict)
    split_source: str = "default rule"

    def split(self, name: Split) -> tuple[TrainingCase, ...]:
        return tuple(c for c in self.cases if c.split == name)

    def case(self, case_id: str) -> TrainingCase:
        for c in self.cases:
            if c.case_id == case_id:
                return c
        raise InputError(f"Expected a case id of '{self.root}', got {case_id!r}.")


def default_split(case_ids: list[str]) -> dict[str, Split]:
    """The default split rule: sorted ids, the last max(1, round(n/5)) validate (n >= 2)."""
    ordered = sorted(case_ids)
    n_val = 0 if len(ordered) < 2 else max(1, round(len(ordered) / 5))
    cut = len(ordered) - n_val
    return {cid: ("train" if i < cut else "val") for i, cid in enumerate(ordered)}


def read_dataset(path: str | Path) -> TrainingDataset:
    """Read a dataset folder in either layout (nnU-Net raw when it has a dataset.json)."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"Expected a dataset folder, got '{root}' which is not a folder.")
    if (root / "dataset.json").is_file():
        return _read_nnunet(root)
    return _read_public(root)


def _public_image(case_dir: Path) -> Path | None:
    for name in ("ct.nii.gz", "ct.nii"):
        if (case_dir / name).is_file():
            return case_dir / name
    return None


def _read_public(root: Path) -> TrainingDataset:
    found = {
        d.name: img
        for d in sorted(root.iterdir())
        if d.is_dir() and (img := _public_image(d)) is not None
    }
    if not found:
        raise InputError(
            f"Expected case folders 'sXXXX/ct.nii.gz' with 'segmentations/' (public layout) or a "
            f"dataset.json (nnU-Net raw), got neither in '{root}'; check the path."
        )
    splits, source = _public_splits(root, list(found))
    cases = tuple(
        TrainingCase(cid, img, splits[cid], masks_dir=root / cid / "segmentations")
        for cid, img in found.items()
    )
    names = _public_label_names(cases)
    return TrainingDataset(root, "public", cases, names, source)


def _public_label_names(cases: tuple[TrainingCase, ...]) -> dict[int, str]:
    """Names of the masks in the first case with masks, in registry (v2, then v1) order."""
    order = {s.name: i for i, s in enumerate(structures())}
    for case in cases:
        if case.masks_dir is not None and case.masks_dir.is_dir():
            stems = {p.name.split(".nii")[0] for p in case.masks_dir.glob("*.nii*")}
            if stems:
                ranked = sorted(stems, key=lambda n: (order.get(n, len(order)), n))
                return {i + 1: n for i, n in enumerate(ranked)}
    return {}


def _read_meta(meta: Path) -> list[dict[str, str]]:
    text = meta.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if ";" in first else ","
    return list(csv.DictReader(text.splitlines(), delimiter=delimiter))


def _public_splits(root: Path, case_ids: list[str]) -> tuple[dict[str, Split], str]:
    meta = root / "meta.csv"
    if not meta.is_file():
        log.warning("No meta.csv in '%s'; using the default split rule.", root)
        return default_split(case_ids), "default rule (no meta.csv)"
    rows = _read_meta(meta)
    if not rows or "split" not in rows[0] or "image_id" not in rows[0]:
        log.warning("meta.csv in '%s' has no image_id/split columns; default split rule.", root)
        return default_split(case_ids), "default rule (meta.csv has no split column)"
    by_id = {r["image_id"].strip(): (r.get("split") or "").strip().lower() for r in rows}
    out: dict[str, Split] = {}
    for cid in case_ids:
        value = by_id.get(cid)
        if value is None:
            log.warning("Case %s is not in meta.csv; it goes to the training split.", cid)
            out[cid] = "train"
        elif value in _SPLIT_ALIASES:
            out[cid] = _SPLIT_ALIASES[value]  # type: ignore[assignment]
        else:
            raise InputError(
                f"Expected split 'train', 'val' or 'test' for {cid} in '{meta}', got {value!r}; "
                "fix the split column."
            )
    return out, "meta.csv"


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Expected valid JSON in '{path}', got an error: {exc}.") from None


def _nnunet_labels(root: Path, doc: dict[str, Any]) -> dict[int, str]:
    labels = doc.get("labels")
    channels = doc.get("channel_names", doc.get("modality", {"0": "CT"}))
    if not isinstance(labels, dict) or labels.get("background") != 0:
        raise InputError(
            f"Expected dataset.json 'labels' with background 0, got {labels!r} in '{root}'."
        )
    if any(not isinstance(v, int) for v in labels.values()):
        raise InputError(
            f"Expected integer label values in '{root}/dataset.json', got region-based labels; "
            "region-based training is not supported."
        )
    if len(channels) != 1:
        raise InputError(
            f"Expected one input channel (CT), got {len(channels)} channels in '{root}'."
        )
    return {int(v): str(k) for k, v in sorted(labels.items(), key=lambda kv: kv[1]) if v != 0}


def _nnunet_cases(root: Path, sub: str, ending: str) -> dict[str, Path]:
    folder = root / f"images{sub}"
    suffix = f"_0000{ending}"
    if not folder.is_dir():
        return {}
    return {p.name[: -len(suffix)]: p for p in sorted(folder.glob(f"*{suffix}"))}


def _read_nnunet(root: Path) -> TrainingDataset:
    doc = _load_json(root / "dataset.json")
    names = _nnunet_labels(root, doc)
    ending = str(doc.get("file_ending", ".nii.gz"))
    train = _nnunet_cases(root, "Tr", ending)
    if not train:
        raise InputError(
            f"Expected images 'imagesTr/<case>_0000{ending}' in '{root}', found none; "
            "check the dataset folder."
        )
    splits, source = _nnunet_splits(root, list(train))
    cases = [
        TrainingCase(cid, img, splits[cid], label_path=root / "labelsTr" / f"{cid}{ending}")
        for cid, img in train.items()
    ]
    for cid, img in _nnunet_cases(root, "Ts", ending).items():
        label = root / "labelsTs" / f"{cid}{ending}"
        if label.is_file():
            cases.append(TrainingCase(cid, img, "test", label_path=label))
    for c in cases:
        if c.label_path is not None and not c.label_path.is_file():
            raise InputError(
                f"Expected the label file '{c.label_path}' for case {c.case_id}, found none."
            )
    return TrainingDataset(root, "nnunet", tuple(cases), names, source)


def _nnunet_splits(root: Path, case_ids: list[str]) -> tuple[dict[str, Split], str]:
    path = root / "splits_final.json"
    if not path.is_file():
        return default_split(case_ids), "default rule (no splits_final.json)"
    folds = _load_json(path)
    if not isinstance(folds, list) or not folds or "val" not in folds[0]:
        raise InputError(f"Expected a list of folds with 'train'/'val' in '{path}', got another.")
    val = set(folds[0]["val"])
    return {cid: ("val" if cid in val else "train") for cid in case_ids}, "splits_final.json"


def read_case_labels(
    dataset: TrainingDataset, case: TrainingCase, classes: Mapping[int, str]
) -> LabelMap:
    """The case's ground truth as one label map in the id space `classes` ({id: name}).

    Structures of `classes` the case has no mask for are empty; native labels outside
    `classes` become background.
    """
    from totalseg.io.nifti import read_image, read_label_map, read_mask_folder

    if case.masks_dir is not None:
        present = {
            i: n
            for i, n in classes.items()
            if any((case.masks_dir / f"{n}{s}").is_file() for s in (".nii.gz", ".nii"))
        }
        if present:
            return _with_names(read_mask_folder(case.masks_dir, present), classes)
        log.warning(
            "Case %s has no mask of the chosen classes; it is all background.", case.case_id
        )
        image = read_image(case.image_path)
        return LabelMap(np.zeros(image.shape, np.uint8), image.affine, dict(classes))
    if case.label_path is None:
        raise InputError(f"Expected ground truth for case {case.case_id}, got none.")
    native = read_label_map(case.label_path, labels=dict(dataset.label_names))
    array = np.asarray(native.array)
    if dict(dataset.label_names) != dict(classes):
        array = relabel(array, dataset.label_names, classes)
    dtype = np.uint8 if max(classes, default=0) <= 255 else np.uint16
    return LabelMap(array.astype(dtype, copy=False), native.affine, dict(classes))


def _with_names(label_map: LabelMap, classes: Mapping[int, str]) -> LabelMap:
    return LabelMap(label_map.array, label_map.affine, dict(classes))
