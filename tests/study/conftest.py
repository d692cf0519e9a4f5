"""Tiny on-disk cohorts in the public dataset layout, and synthetic statistics tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from totalseg.image import Image, LabelMap
from totalseg.io import write_image, write_mask_folder

SHAPE = (18, 20, 16)
AFFINE = np.diag([4.0, 4.0, 5.0, 1.0])
#: structure -> (label, box slices, HU); the kidney box varies in size with the scan index.
NAMES = {1: "spleen", 2: "kidney_right", 5: "liver"}


def scan_arrays(index: int, *, empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """CT (int16) and labels of scan `index`; voxel [0, 0, 0] encodes the index."""
    rng = np.random.default_rng(index)
    labels = np.zeros(SHAPE, np.uint8)
    if not empty:
        labels[4:12, 4:12, 4:11] = 5
        labels[12:15, 4:8, 5:9] = 1
        labels[4:8, 13 : 13 + 2 + index % 3, 5:10] = 2
    ct = rng.normal(-300.0, 5.0, SHAPE)
    ct[labels == 5] = rng.normal(60.0, 2.0, int((labels == 5).sum()))
    ct[labels == 1] = rng.normal(44.0, 2.0, int((labels == 1).sum()))
    ct[labels == 2] = rng.normal(30.0, 2.0, int((labels == 2).sum()))
    ct = ct.astype(np.int16)
    ct[0, 0, 0] = -1000 - index
    return ct, labels


def write_scan(folder: Path, index: int, *, empty: bool = False) -> None:
    ct, labels = scan_arrays(index, empty=empty)
    write_image(Image(ct, AFFINE), folder / "ct.nii.gz")
    write_mask_folder(LabelMap(labels, AFFINE, NAMES), folder / "segmentations")


@pytest.fixture
def make_cohort(tmp_path: Path) -> Callable[..., Path]:
    """make_cohort(n, empty=(), corrupt=()) -> public-layout folder with meta.csv."""

    def make(n: int, *, empty: tuple[int, ...] = (), corrupt: tuple[int, ...] = ()) -> Path:
        root = tmp_path / "dataset"
        lines = ["image_id;age;gender;institute;split"]
        for i in range(n):
            image_id = f"s{i:04d}"
            write_scan(root / image_id, i, empty=i in empty)
            if i in corrupt:
                (root / image_id / "ct.nii.gz").write_bytes(b"not a nifti file")
            lines.append(f"{image_id};{30 + 3 * i};{'m' if i % 2 else 'f'};A;train")
        (root / "meta.csv").write_text("\n".join(lines) + "\n")
        return root

    return make
