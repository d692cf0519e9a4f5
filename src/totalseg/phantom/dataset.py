"""Write phantoms in the layout of the reference tool's public dataset.

    DIR/meta.csv                               image_id;age;gender;...;split;<generator params>
    DIR/s0000/ct.nii.gz                        int16 HU
    DIR/s0000/segmentations/<name>.nii.gz      uint8 0/1, one per class of the class map
    DIR/s0000/multilabel_v1.nii.gz             optional: all classes, class-map ids

Subjects are generated from (seed, index) only, so the output does not depend on `jobs`.
A subject folder appears atomically (written under a temporary name, then renamed); a rerun
skips finished subjects and never duplicates one.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.errors import InputError
from totalseg.phantom.effects import DEFAULT_EFFECTS, PopulationEffect
from totalseg.phantom.params import SubjectParams, sample_subject_params

__all__ = ["META_COLUMNS", "DatasetOptions", "subject_seed", "subject_splits", "write_dataset"]

logger = logging.getLogger(__name__)

META_COLUMNS = (
    "image_id", "age", "gender", "institute", "study_type", "split", "manufacturer",
    "scanner_model", "kvp", "pathology", "pathology_location", "height_cm", "bmi", "phase",
    "fov", "spacing", "orientation", "seed",
)  # fmt: skip
_STUDY_TYPE = {
    "whole-body": "ct whole body",
    "thorax-abdomen": "ct thorax-abdomen-pelvis",
    "abdomen": "ct abdomen-pelvis",
}

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class DatasetOptions:
    """How the subjects of a dataset are drawn and written (None / "random" = drawn)."""

    fov: str | None = None
    spacing_mm: float | tuple[float, float, float] | None = None
    phase: str | None = None
    orientation: str | None = "RAS"
    class_map: str = "v1"
    multilabel: bool = False
    effects: tuple[PopulationEffect, ...] = field(default=DEFAULT_EFFECTS)

    def __post_init__(self) -> None:
        if self.class_map not in ("v1", "v2"):
            raise InputError(
                f"Expected class map 'v1' (104 classes) or 'v2' (117 classes), "
                f"got {self.class_map!r}."
            )


def subject_seed(seed: int, index: int) -> int:
    """The seed of subject `index` of a dataset drawn with `seed` (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def subject_splits(n: int, seed: int, fractions: tuple[float, float] = (0.8, 0.1)) -> list[str]:
    """train / val / test per subject index: a seeded permutation, 80 / 10 / 10 by default."""
    order = np.random.default_rng([int(seed), 0x5B1]).permutation(n)
    n_train = round(fractions[0] * n)
    n_val = round(fractions[1] * n)
    split = ["test"] * n
    for rank, index in enumerate(order):
        split[int(index)] = (
            "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
        )
    return split


def _params(seed: int, index: int, options: DatasetOptions) -> SubjectParams:
    return sample_subject_params(
        subject_seed(seed, index),
        fov=options.fov,
        spacing_mm=options.spacing_mm,
        phase=options.phase,
        orientation=options.orientation,
    )


def meta_row(image_id: str, params: SubjectParams, split: str) -> dict[str, Any]:
    """One meta.csv row (public dataset columns, then the generator's parameters)."""
    return {
        "image_id": image_id,
        "age": round(params.age_years),
        "gender": params.sex.lower(),
        "institute": "phantom",
        "study_type": _STUDY_TYPE[params.fov],
        "split": split,
        "manufacturer": "totalseg-phantom",
        "scanner_model": "synthetic",
        "kvp": 120,
        "pathology": "kidney_cyst",
        "pathology_location": "kidney",
        "height_cm": round(params.height_cm, 1),
        "bmi": round(params.bmi, 1),
        "phase": params.phase,
        "fov": params.fov,
        "spacing": "x".join(f"{s:g}" for s in params.spacing_mm),
        "orientation": params.orientation,
        "seed": params.seed,
    }


def _write_subject(
    out_dir: Path, image_id: str, params: SubjectParams, options: DatasetOptions
) -> None:
    from totalseg.io.nifti import (
        PHANTOM_DESCRIPTION,
        write_image,
        write_label_map,
        write_mask_folder,
    )
    from totalseg.phantom.generate import generate_subject

    final = out_dir / image_id
    if final.is_dir():
        return
    phantom = generate_subject(params, effects=options.effects)
    tmp = Path(tempfile.mkdtemp(prefix=f".{image_id}.", dir=out_dir))
    try:
        write_image(phantom.image, tmp / "ct.nii.gz", description=PHANTOM_DESCRIPTION)
        label_map = phantom.label_map(options.class_map)  # type: ignore[arg-type]
        write_mask_folder(label_map, tmp / "segmentations")
        if options.multilabel:
            write_label_map(label_map, tmp / f"multilabel_{options.class_map}.nii.gz")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_meta(out_dir: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path = out_dir / "meta.csv"
    fd, tmp = tempfile.mkstemp(prefix=".meta.", suffix=".csv", dir=out_dir)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(META_COLUMNS), delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def write_dataset(
    out_dir: str | os.PathLike[str],
    *,
    n: int,
    seed: int = 0,
    options: DatasetOptions | None = None,
    jobs: int = 1,
    progress: ProgressFn | None = None,
) -> Path:
    """Generate and write `n` subjects; returns the path of meta.csv (written last)."""
    if n < 1:
        raise InputError(f"Expected at least 1 subject, got n={n}.")
    if jobs < 1:
        raise InputError(f"Expected jobs >= 1, got {jobs}.")
    options = options or DatasetOptions()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    splits = subject_splits(n, seed)
    params = [_params(seed, i, options) for i in range(n)]
    ids = [f"s{i:04d}" for i in range(n)]
    todo = [i for i in range(n) if not (root / ids[i]).is_dir()]
    done = n - len(todo)
    if progress is not None:
        progress(done, n)
    if jobs == 1 or len(todo) <= 1:
        for i in todo:
            _write_subject(root, ids[i], params[i], options)
            done += 1
            if progress is not None:
                progress(done, n)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_write_subject, root, ids[i], params[i], options) for i in todo]
            for future in as_completed(futures):
                future.result()
                done += 1
                if progress is not None:
                    progress(done, n)
    rows = [meta_row(ids[i], params[i], splits[i]) for i in range(n)]
    return _write_meta(root, rows)
