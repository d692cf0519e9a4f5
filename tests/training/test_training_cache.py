"""Preprocessing cache: canonical orientation, resampling, reuse, invalidation, parallel build."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, ornt_transform

import totalseg.training.cache as cache_mod
from totalseg.errors import InputError
from totalseg.training.cache import build_cache, load_cached_case, median_spacing_mm
from totalseg.training.dataset import read_dataset

ALL = ("image", "labels", "class_locations", "fg_sample")


def _reorient_dataset(root: Path, codes: str) -> None:
    """Rewrite every NIfTI of a dataset in another orientation (same world geometry)."""
    for path in root.rglob("*.nii.gz"):
        img = nib.load(path)
        data = np.asarray(img.dataobj)
        img = nib.Nifti1Image(data, img.affine)
        out = img.as_reoriented(ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(codes))))
        nib.save(nib.Nifti1Image(np.asarray(out.dataobj), out.affine), path)


def test_cache_contents(public_dataset: Path, cache_dir: Path) -> None:
    ds = read_dataset(public_dataset)
    classes = dict(ds.label_names)
    cases = build_cache(ds, classes=classes, spacing_mm=3.0, cache_dir=cache_dir)
    c = cases[0]
    # 24x28x20 voxels (x, y, z) at 1.5 mm -> nnU-Net array order (z, y, x) at 3 mm
    assert c.shape == (10, 14, 12) and c.spacing == (3.0, 3.0, 3.0)
    assert c.original_spacing == (1.5, 1.5, 1.5) and c.present_classes == (1, 2, 3)
    a = load_cached_case(c, keys=ALL)
    assert a["image"].dtype == np.int16 and a["labels"].dtype == np.uint8
    assert a["image"].shape == a["labels"].shape == c.shape
    assert set(np.unique(a["labels"])) <= {0, 1, 2, 3}
    loc = a["class_locations"]
    assert loc.shape[1] == 4 and np.all(a["labels"][tuple(loc[:, 1:].T)] == loc[:, 0])
    assert len(a["fg_sample"]) > 0 and a["fg_sample"].min() > -200  # labelled voxels only


def test_nearest_label_resampling_creates_no_new_labels() -> None:
    labels = np.random.default_rng(0).integers(0, 5, (7, 9, 11)).astype(np.uint8) * 3
    out = cache_mod._nearest_resize(labels, (4, 13, 11))
    assert out.shape == (4, 13, 11) and set(np.unique(out)) <= set(np.unique(labels))
    assert np.array_equal(cache_mod._nearest_resize(labels, labels.shape), labels)


def test_cache_is_orientation_invariant(make_dataset, tmp_path: Path) -> None:
    ras = make_dataset(tmp_path / "ras", 2, seed=3)
    pir = make_dataset(tmp_path / "pir", 2, seed=3)
    _reorient_dataset(pir, "PIR")
    assert nib.aff2axcodes(nib.load(pir / "s0000" / "ct.nii.gz").affine) == ("P", "I", "R")
    kwargs = {"classes": {1: "liver", 2: "spleen"}, "spacing_mm": (3.0, 1.5, 2.0)}
    a = build_cache(read_dataset(ras), cache_dir=tmp_path / "c1", **kwargs)
    b = build_cache(read_dataset(pir), cache_dir=tmp_path / "c2", **kwargs)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape and x.spacing == (2.0, 1.5, 3.0)  # reversed (z, y, x)
        ax, ay = load_cached_case(x, keys=ALL), load_cached_case(y, keys=ALL)
        assert np.array_equal(ax["image"], ay["image"])
        assert np.array_equal(ax["labels"], ay["labels"])


def test_cache_reuse_and_invalidation(public_dataset: Path, cache_dir: Path, monkeypatch) -> None:
    ds = read_dataset(public_dataset)
    classes = dict(ds.label_names)
    first = build_cache(ds, classes=classes, spacing_mm=3.0, cache_dir=cache_dir)

    def refuse(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    with monkeypatch.context() as m:
        m.setattr(cache_mod, "_build_one", refuse)
        again = build_cache(
            read_dataset(public_dataset), classes=classes, spacing_mm=3.0, cache_dir=cache_dir
        )
    assert [c.path for c in again] == [c.path for c in first]
    # change one mask of case 1: only that case is rebuilt, its stale entry removed
    mask_path = public_dataset / "s0001" / "segmentations" / "liver.nii.gz"
    img = nib.load(mask_path)
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), mask_path)
    os.utime(mask_path, ns=(1, 1))
    built = []
    original = cache_mod._build_one
    monkeypatch.setattr(
        cache_mod, "_build_one", lambda *a: built.append(a[1].case_id) or original(*a)
    )
    third = build_cache(
        read_dataset(public_dataset), classes=classes, spacing_mm=3.0, cache_dir=cache_dir
    )
    assert built == ["s0001"]
    assert third[1].path != first[1].path and not first[1].path.exists()
    assert 3 not in third[1].present_classes and third[0].path == first[0].path
    # another spacing is another entry; the first configuration's entries stay
    other = build_cache(
        read_dataset(public_dataset), classes=classes, spacing_mm=1.5, cache_dir=cache_dir
    )
    assert other[0].path != third[0].path and third[0].path.exists()


def test_parallel_build_matches_serial(public_dataset: Path, tmp_path: Path) -> None:
    ds = read_dataset(public_dataset)
    classes = dict(ds.label_names)
    serial = build_cache(ds, classes=classes, spacing_mm=2.0, cache_dir=tmp_path / "a", jobs=1)
    parallel = build_cache(ds, classes=classes, spacing_mm=2.0, cache_dir=tmp_path / "b", jobs=2)
    for x, y in zip(serial, parallel, strict=True):
        ax, ay = load_cached_case(x, keys=ALL), load_cached_case(y, keys=ALL)
        assert all(np.array_equal(ax[k], ay[k]) for k in ALL)


def test_cache_errors(public_dataset: Path, cache_dir: Path) -> None:
    ds = read_dataset(public_dataset)
    with pytest.raises(InputError, match="positive target spacings"):
        build_cache(ds, classes={1: "liver"}, spacing_mm=0.0, cache_dir=cache_dir)
    with pytest.raises(InputError, match="at least one class"):
        build_cache(ds, classes={}, spacing_mm=3.0, cache_dir=cache_dir)
    cases = build_cache(ds, classes={1: "liver"}, spacing_mm=3.0, cache_dir=cache_dir)
    cases[0].path.write_bytes(b"broken")
    with pytest.raises(InputError, match="delete it and rerun"):
        load_cached_case(cases[0])
    # a corrupt entry is rebuilt on the next build
    rebuilt = build_cache(ds, classes={1: "liver"}, spacing_mm=3.0, cache_dir=cache_dir)
    assert load_cached_case(rebuilt[0])["labels"].shape == cases[0].shape


def test_median_spacing(public_dataset: Path) -> None:
    assert median_spacing_mm(read_dataset(public_dataset)) == (1.5, 1.5, 1.5)
