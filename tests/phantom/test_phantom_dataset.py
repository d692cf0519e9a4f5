"""Dataset layout on disk: files, no overlaps, meta.csv, determinism across --jobs, resume."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from totalseg.anatomy import class_map
from totalseg.errors import InputError
from totalseg.phantom import DatasetOptions, write_dataset
from totalseg.phantom.dataset import META_COLUMNS, subject_splits

OPTIONS = DatasetOptions(
    fov="abdomen",
    spacing_mm=10.0,
    phase="native",
    class_map="v2",
    multilabel=True,
    orientation="random",
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    write_dataset(root, n=2, seed=1, options=OPTIONS, jobs=1)
    return root


def _arrays(folder):
    out = {}
    for path in sorted(folder.rglob("*.nii.gz")):
        out[str(path.relative_to(folder))] = np.asarray(nib.load(path).dataobj)
    return out


def test_layout_and_meta(dataset):
    with (dataset / "meta.csv").open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    assert [r["image_id"] for r in rows] == ["s0000", "s0001"]
    assert tuple(rows[0]) == META_COLUMNS
    assert all(r["split"] in ("train", "val", "test") and r["gender"] in ("m", "f") for r in rows)
    for r in rows:
        folder = dataset / r["image_id"]
        ct = nib.load(folder / "ct.nii.gz")
        assert ct.get_data_dtype() == np.int16
        assert "".join(nib.aff2axcodes(ct.affine)) == r["orientation"]
        masks = sorted(p.name for p in (folder / "segmentations").iterdir())
        assert masks == sorted(f"{n}.nii.gz" for n in class_map("v2").values())
        assert (folder / "multilabel_v2.nii.gz").exists()


def test_masks_on_disk_do_not_overlap_and_match_the_multilabel(dataset):
    folder = dataset / "s0000"
    ids = {n: i for i, n in class_map("v2").items()}
    multi = np.asarray(nib.load(folder / "multilabel_v2.nii.gz").dataobj)
    total = np.zeros(multi.shape, dtype=np.int32)
    rebuilt = np.zeros(multi.shape, dtype=np.int32)
    for name, i in ids.items():
        mask = np.asarray(nib.load(folder / "segmentations" / f"{name}.nii.gz").dataobj)
        assert mask.dtype == np.uint8 and mask.max() <= 1
        total += mask
        rebuilt[mask > 0] = i
    assert total.max() == 1
    np.testing.assert_array_equal(rebuilt, multi)


def test_jobs_do_not_change_the_output(dataset, tmp_path):
    write_dataset(tmp_path, n=2, seed=1, options=OPTIONS, jobs=2)
    a, b = _arrays(dataset), _arrays(tmp_path)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key


def test_rerun_resumes_without_regenerating(dataset):
    ct = dataset / "s0001" / "ct.nii.gz"
    stamp = ct.stat().st_mtime_ns
    calls = []
    write_dataset(dataset, n=2, seed=1, options=OPTIONS, progress=lambda d, n: calls.append(d))
    assert ct.stat().st_mtime_ns == stamp
    assert calls == [2]
    assert not [p for p in dataset.iterdir() if p.name.startswith(".")]


def test_splits_are_deterministic_and_complete():
    s = subject_splits(50, 3)
    assert s == subject_splits(50, 3)
    assert (s.count("train"), s.count("val"), s.count("test")) == (40, 5, 5)


def test_bad_dataset_arguments(tmp_path):
    with pytest.raises(InputError, match="at least 1 subject"):
        write_dataset(tmp_path, n=0)
    with pytest.raises(InputError, match="jobs >= 1"):
        write_dataset(tmp_path, n=1, jobs=0)
    with pytest.raises(InputError, match="class map 'v1'"):
        DatasetOptions(class_map="v3")
