"""Datasets: public layout, nnU-Net raw layout, splits, class specs, conversion."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from totalseg.anatomy import class_map, part_maps
from totalseg.errors import ConfigError, InputError, UnknownStructureError
from totalseg.training.classes import resolve_classes
from totalseg.training.convert import convert_dataset
from totalseg.training.dataset import default_split, read_case_labels, read_dataset

BLOB_NAMES = ("spleen", "liver", "kidney_left")


def test_public_layout_cases_splits_and_names(public_dataset: Path) -> None:
    ds = read_dataset(public_dataset)
    assert ds.layout == "public" and ds.split_source == "meta.csv"
    assert [c.case_id for c in ds.cases] == ["s0000", "s0001", "s0002", "s0003"]
    assert [c.split for c in ds.cases] == ["train", "train", "train", "val"]
    # registry (v2 id) order: spleen 1, kidney_left 3, liver 5
    assert dict(ds.label_names) == {1: "spleen", 2: "kidney_left", 3: "liver"}


def test_default_split_rule() -> None:
    assert default_split(["a"]) == {"a": "train"}
    assert default_split(["b", "a"]) == {"a": "train", "b": "val"}
    ten = default_split([f"s{i:02d}" for i in range(10)])
    assert [k for k, v in ten.items() if v == "val"] == ["s08", "s09"]


@pytest.mark.parametrize("meta", [None, "no_split"])
def test_missing_meta_or_split_column_uses_default_rule(
    tmp_path: Path, meta: str | None, make_dataset
) -> None:
    ds = read_dataset(make_dataset(tmp_path / "d", 4, meta=meta))
    assert ds.split_source.startswith("default rule")
    assert [c.split for c in ds.cases] == ["train", "train", "train", "val"]


def test_bad_split_value_is_an_error(public_dataset: Path) -> None:
    meta = public_dataset / "meta.csv"
    meta.write_text(meta.read_text().replace(";val", ";holdout"))
    with pytest.raises(InputError, match=r"Expected split 'train', 'val' or 'test'.*holdout"):
        read_dataset(public_dataset)


def test_empty_or_missing_dataset_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"Expected case folders 'sXXXX/ct\.nii\.gz'"):
        read_dataset(tmp_path / "empty")
    with pytest.raises(InputError, match="not a folder"):
        read_dataset(tmp_path / "nope")


def test_class_specs() -> None:
    assert resolve_classes("v1") == class_map("v1") and len(resolve_classes("v1")) == 104
    assert len(resolve_classes("v2")) == 117
    assert resolve_classes("part:291") == part_maps("v2")[291]
    assert resolve_classes("part:251") == part_maps("v1")[251]
    assert resolve_classes("liver, spleen") == {1: "liver", 2: "spleen"}
    assert resolve_classes(["kidney_left", "liver"]) == {1: "kidney_left", 2: "liver"}


def test_class_spec_errors() -> None:
    with pytest.raises(UnknownStructureError, match="Did you mean 'liver'"):
        resolve_classes("livr,spleen")
    with pytest.raises(ConfigError, match="part dataset id among"):
        resolve_classes("part:299")
    with pytest.raises(ConfigError, match="integer dataset id"):
        resolve_classes("part:abc")
    with pytest.raises(ConfigError, match="Expected classes"):
        resolve_classes(" , ")


def test_labels_in_a_chosen_id_space(public_dataset: Path) -> None:
    ds = read_dataset(public_dataset)
    case = ds.cases[0]
    native = read_case_labels(ds, case, ds.label_names)
    chosen = read_case_labels(ds, case, {1: "liver", 2: "aorta"})  # aorta: no mask -> empty
    liver = np.asarray(native.array) == 3
    assert np.array_equal(np.asarray(chosen.array) == 1, liver)
    assert set(np.unique(chosen.array)) == {0, 1}
    mask = np.asarray(nib.load(case.masks_dir / "liver.nii.gz").dataobj) > 0
    assert np.array_equal(liver, mask)


def test_convert_round_trip(public_dataset: Path, tmp_path: Path) -> None:
    nn = convert_dataset(public_dataset, tmp_path / "nn", to="nnunet", name="tiny")
    assert nn.layout == "nnunet" and nn.split_source == "splits_final.json"
    doc = json.loads((tmp_path / "nn" / "dataset.json").read_text())
    assert doc["labels"] == {"background": 0, "spleen": 1, "kidney_left": 2, "liver": 3}
    assert doc["numTraining"] == 4 and doc["channel_names"] == {"0": "CT"}
    assert (tmp_path / "nn" / "imagesTr" / "s0000_0000.nii.gz").is_file()
    back = convert_dataset(tmp_path / "nn", tmp_path / "pub", to="public")
    assert [c.split for c in back.cases] == [c.split for c in read_dataset(public_dataset).cases]
    src, dst = read_dataset(public_dataset), back
    for a, b in zip(src.cases, dst.cases, strict=True):
        la = read_case_labels(src, a, src.label_names)
        lb = read_case_labels(dst, b, dst.label_names)
        assert np.array_equal(la.array, lb.array) and np.allclose(la.affine, lb.affine)
    assert sorted(p.name for p in (tmp_path / "pub" / "s0000" / "segmentations").iterdir()) == (
        sorted(f"{n}.nii.gz" for n in BLOB_NAMES)
    )


def test_convert_with_classes_and_test_split(public_dataset: Path, tmp_path: Path) -> None:
    meta = public_dataset / "meta.csv"
    meta.write_text(meta.read_text().replace("s0002;50;m;train", "s0002;50;m;test"))
    nn = convert_dataset(
        public_dataset, tmp_path / "nn", to="nnunet", classes={1: "liver", 2: "spleen"}
    )
    assert (tmp_path / "nn" / "imagesTs" / "s0002_0000.nii.gz").is_file()
    assert [c.split for c in nn.cases] == ["train", "train", "val", "test"]
    assert dict(nn.label_names) == {1: "liver", 2: "spleen"}
    # relabelling an nnU-Net dataset by name
    ds = read_dataset(tmp_path / "nn")
    only_spleen = read_case_labels(ds, ds.cases[0], {1: "spleen"})
    native = read_case_labels(ds, ds.cases[0], ds.label_names)
    assert np.array_equal(np.asarray(only_spleen.array) == 1, np.asarray(native.array) == 2)


def test_convert_refuses_non_empty_destination(public_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="empty or new destination"):
        convert_dataset(public_dataset, tmp_path / "busy", to="nnunet")
    with pytest.raises(InputError, match="Expected target layout"):
        convert_dataset(public_dataset, tmp_path / "new", to="zip")  # type: ignore[arg-type]


def _nnunet_dir(tmp_path: Path, labels: object) -> Path:
    root = tmp_path / "raw"
    (root / "imagesTr").mkdir(parents=True)
    doc = {"channel_names": {"0": "CT"}, "labels": labels, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(doc))
    return root


def test_nnunet_dataset_json_errors(tmp_path: Path) -> None:
    root = _nnunet_dir(tmp_path, {"liver": 1})
    with pytest.raises(InputError, match="background 0"):
        read_dataset(root)
    root = _nnunet_dir(tmp_path / "b", {"background": 0, "organ": [1, 2]})
    with pytest.raises(InputError, match="region-based"):
        read_dataset(root)
    root = _nnunet_dir(tmp_path / "c", {"background": 0, "liver": 1})
    with pytest.raises(InputError, match=r"imagesTr/<case>_0000\.nii\.gz"):
        read_dataset(root)
