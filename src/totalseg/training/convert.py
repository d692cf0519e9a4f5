"""Convert a training dataset between the public layout and nnU-Net's raw layout.

To nnU-Net: ``imagesTr/<case>_0000.nii.gz`` + ``labelsTr/<case>.nii.gz`` (label map in the chosen
id space, with the XML label table), test-split cases in ``imagesTs``/``labelsTs``,
``dataset.json`` and ``splits_final.json`` (one fold: the train/val split).
To public: ``<case>/ct.nii.gz`` + ``<case>/segmentations/<name>.nii.gz`` for every class (empty
ones included, like the reference dataset) and ``meta.csv`` (``image_id;split``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from totalseg.errors import InputError
from totalseg.image import LabelMap
from totalseg.training.dataset import TrainingDataset, read_case_labels, read_dataset

__all__ = ["ConvertTarget", "convert_dataset", "nnunet_dataset_json"]

log = logging.getLogger(__name__)

ConvertTarget = Literal["nnunet", "public"]
ProgressCallback = Callable[[int, int, str], None]


def nnunet_dataset_json(
    classes: Mapping[int, str], *, n_training: int, name: str = "totalseg"
) -> dict[str, object]:
    """nnU-Net v2 dataset.json for a one-channel CT dataset with labels `classes` (1..n)."""
    labels: dict[str, int] = {"background": 0}
    labels.update({n: int(i) for i, n in sorted(classes.items())})
    return {
        "channel_names": {"0": "CT"},
        "labels": labels,
        "numTraining": int(n_training),
        "file_ending": ".nii.gz",
        "name": name,
    }


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy_image(src: Path, dst: Path) -> None:
    """Copy a NIfTI image; an uncompressed source is rewritten compressed."""
    if str(src).endswith(".gz"):
        _copy_file(src, dst)
        return
    from totalseg.io.nifti import read_image, write_image

    write_image(read_image(src), dst, header_from=src)


def _check_destination(dst: Path, source: TrainingDataset) -> None:
    if dst.resolve() == source.root.resolve():
        raise InputError(f"Expected a destination other than the source, got '{dst}' for both.")
    if dst.exists() and any(dst.iterdir()):
        raise InputError(
            f"Expected an empty or new destination folder, got '{dst}' which has files; "
            "choose another folder."
        )


def convert_dataset(
    source: str | Path,
    destination: str | Path,
    *,
    to: ConvertTarget,
    classes: Mapping[int, str] | None = None,
    name: str = "totalseg",
    progress: ProgressCallback | None = None,
) -> TrainingDataset:
    """Convert `source` (either layout) to `destination` in layout `to`; return the result.

    `classes` ({id: name}, ids 1..n) is the id space of the output labels; by default the
    source's own label names.
    """
    if to not in ("nnunet", "public"):
        raise InputError(f"Expected target layout 'nnunet' or 'public', got {to!r}.")
    src = read_dataset(source)
    dst = Path(destination)
    _check_destination(dst, src)
    chosen = dict(classes) if classes is not None else dict(src.label_names)
    if not chosen:
        raise InputError(f"Expected label names in '{src.root}', found none; pass classes.")
    if sorted(chosen) != list(range(1, len(chosen) + 1)):
        raise InputError(f"Expected class ids 1..{len(chosen)}, got {sorted(chosen)}.")
    for k, case in enumerate(src.cases):
        labels = read_case_labels(src, case, chosen)
        if to == "nnunet":
            _write_nnunet_case(dst, case.case_id, case.split, case.image_path, labels)
        else:
            _write_public_case(dst, case.case_id, case.image_path, labels, chosen)
        if progress is not None:
            progress(k + 1, len(src.cases), case.case_id)
    if to == "nnunet":
        _write_nnunet_meta(dst, src, chosen, name)
    else:
        rows = ["image_id;split", *(f"{c.case_id};{c.split}" for c in src.cases)]
        _write_text(dst / "meta.csv", "\n".join(rows) + "\n")
    log.info("Converted %d cases from '%s' to '%s' (%s).", len(src.cases), src.root, dst, to)
    return read_dataset(dst)


def _write_nnunet_case(dst: Path, case_id: str, split: str, image: Path, labels: LabelMap) -> None:
    from totalseg.io.nifti import write_label_map

    sub = "Ts" if split == "test" else "Tr"
    _copy_image(image, dst / f"images{sub}" / f"{case_id}_0000.nii.gz")
    write_label_map(labels, dst / f"labels{sub}" / f"{case_id}.nii.gz", header_from=image)


def _write_public_case(
    dst: Path, case_id: str, image: Path, labels: LabelMap, classes: Mapping[int, str]
) -> None:
    from totalseg.io.nifti import write_mask_folder

    _copy_image(image, dst / case_id / "ct.nii.gz")
    write_mask_folder(labels, dst / case_id / "segmentations", labels=classes, header_from=image)


def _write_nnunet_meta(
    dst: Path, src: TrainingDataset, classes: Mapping[int, str], name: str
) -> None:
    n_train = len(src.split("train")) + len(src.split("val"))
    doc = nnunet_dataset_json(classes, n_training=n_train, name=name)
    _write_text(dst / "dataset.json", json.dumps(doc, indent=2) + "\n")
    fold = {
        "train": [c.case_id for c in src.split("train")],
        "val": [c.case_id for c in src.split("val")],
    }
    _write_text(dst / "splits_final.json", json.dumps([fold], indent=2) + "\n")
