"""Tiny synthetic training datasets (public layout), written with nibabel in milliseconds."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

BLOB_NAMES = ("spleen", "liver", "kidney_left")
SHAPE = (24, 28, 20)


def _blob_case(rng: np.random.Generator, shape=SHAPE) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A CT-like volume (air outside a body ellipsoid) with three HU-distinct blobs."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")).astype(float)
    center = np.array(shape, dtype=float)[:, None, None, None] / 2
    body = (((grid - center) / (np.array(shape)[:, None, None, None] * 0.45)) ** 2).sum(0) < 1
    ct = np.where(body, 0.0, -1000.0) + rng.normal(0, 10, shape)
    masks = {}
    for k, (name, hu) in enumerate(zip(BLOB_NAMES, (60.0, 120.0, 200.0), strict=True)):
        c = center[:, 0, 0, 0] + rng.uniform(-1, 1, 3) + np.array([(k - 1) * 8.0, 0, 0])
        r = rng.uniform(2.5, 3.5)
        mask = ((grid - c[:, None, None, None]) ** 2).sum(0) < r**2
        ct[mask] = hu + rng.normal(0, 10, int(mask.sum()))
        masks[name] = mask.astype(np.uint8)
    return np.round(ct).astype(np.int16), masks


def write_public_dataset(
    root: Path, n_cases: int = 4, *, seed: int = 0, meta: str | None = "split", affine=None
) -> Path:
    """Cases s0000.. with ct.nii.gz + segmentations/<name>.nii.gz and a meta.csv."""
    rng = np.random.default_rng(seed)
    aff = np.diag([1.5, 1.5, 1.5, 1.0]) if affine is None else affine
    splits = ["train"] * n_cases
    if n_cases >= 2:
        splits[-1] = "val"
    for i in range(n_cases):
        ct, masks = _blob_case(rng)
        case = root / f"s{i:04d}"
        (case / "segmentations").mkdir(parents=True)
        nib.save(nib.Nifti1Image(ct, aff), case / "ct.nii.gz")
        for name, mask in masks.items():
            nib.save(nib.Nifti1Image(mask, aff), case / "segmentations" / f"{name}.nii.gz")
    if meta == "split":
        rows = ["image_id;age;gender;split", *(f"s{i:04d};50;m;{s}" for i, s in enumerate(splits))]
        (root / "meta.csv").write_text("\n".join(rows) + "\n")
    elif meta == "no_split":
        rows = ["image_id;age", *(f"s{i:04d};50" for i in range(n_cases))]
        (root / "meta.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def public_dataset(tmp_path: Path) -> Path:
    return write_public_dataset(tmp_path / "public", 4)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def make_dataset():
    """`write_public_dataset(root, n_cases, *, seed, meta, affine)` for tests needing variants."""
    return write_public_dataset
