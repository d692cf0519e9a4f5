"""A tiny synthetic evaluation dataset written in every supported layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from totalseg.anatomy import class_map, subset
from totalseg.image import LabelMap
from totalseg.io import write_label_map

SHAPE = (23, 31, 17)
SPACING = (1.5, 0.8, 3.0)
NAMES = subset("btcv13")  # 13 structures, all in both v1 and v2
CASES = ("s0001", "s0002", "s0003")


def _ids(version):
    return {name: i for i, name in class_map(version).items()}


def _box(array, value, lo, hi):
    array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = value


@dataclass
class Dataset:
    root: Path
    ref: dict[str, dict[str, np.ndarray]]  # case -> name -> bool mask
    pred: dict[str, dict[str, np.ndarray]]
    affine: np.ndarray
    names: tuple[str, ...] = NAMES

    def ref_public(self) -> Path:
        return self.root / "ref_public"

    def pred_folder(self, layout: str) -> Path:
        return self.root / f"pred_{layout}"


def _masks(seed: int, *, perturb: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for k, name in enumerate(NAMES):  # one cell of a 3 x 3 x 2 grid per structure
        m = np.zeros(SHAPE, dtype=bool)
        lo = np.array([1 + 7 * (k % 3), 1 + 10 * (k // 3 % 3), 1 + 8 * (k // 9)])
        lo += rng.integers(0, 2, size=3)
        _box(m, True, lo, lo + np.array([4, 6, 4]) + rng.integers(0, 2, size=3))
        if perturb:
            m = np.roll(m, int(rng.integers(-1, 2)), axis=int(rng.integers(0, 3)))
            m[tuple(rng.integers(0, s) for s in SHAPE)] = True
        out[name] = m
    return out


def _label_array(masks: dict[str, np.ndarray], ids: dict[str, int]) -> np.ndarray:
    arr = np.zeros(SHAPE, dtype=np.uint8)
    for name, m in masks.items():
        arr[m] = ids[name]
    return arr


def _write(ds: Dataset) -> None:
    v1, v2 = _ids("v1"), _ids("v2")
    for case in CASES:
        ref, pred = ds.ref[case], ds.pred[case]
        seg = ds.ref_public() / case / "segmentations"
        for name, m in ref.items():
            write_label_map(
                LabelMap(m.astype(np.uint8), ds.affine), seg / f"{name}.nii.gz", label_table=False
            )
        ct = LabelMap(np.zeros(SHAPE, dtype=np.int16), ds.affine)
        write_label_map(ct, ds.ref_public() / case / "ct.nii.gz", label_table=False)
        write_label_map(
            LabelMap(_label_array(pred, v2), ds.affine, {v2[n]: n for n in NAMES}),
            ds.pred_folder("ml_table") / f"{case}.nii.gz",
        )
        write_label_map(
            LabelMap(_label_array(pred, v1), ds.affine),
            ds.pred_folder("ml_v1") / f"{case}.nii.gz",
            label_table=False,
        )
        for name, m in pred.items():
            write_label_map(
                LabelMap(m.astype(np.uint8), ds.affine),
                ds.pred_folder("masks") / case / f"{name}.nii.gz",
                label_table=False,
            )
    (ds.ref_public() / "meta.csv").write_text(
        "image_id;age;split\ns0001;50;train\ns0002;61;test\ns0003;70;test\n"
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    """3 cases x 13 structures; s0002 misses the liver, s0003's reference has no pancreas."""
    root = tmp_path_factory.mktemp("evalset")
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = (-20.0, 10.0, 5.0)
    ref = {c: _masks(i, perturb=False) for i, c in enumerate(CASES)}
    pred = {c: _masks(i, perturb=True) for i, c in enumerate(CASES)}
    # Overlap-free so multilabel and per-class layouts hold identical masks.
    for case in CASES:
        for group in (ref[case], pred[case]):
            taken = np.zeros(SHAPE, dtype=bool)
            for name in NAMES:
                group[name] &= ~taken
                taken |= group[name]
    pred["s0002"]["liver"][:] = False
    ref["s0003"]["pancreas"][:] = False
    ds = Dataset(root, ref, pred, affine)
    _write(ds)
    return ds
