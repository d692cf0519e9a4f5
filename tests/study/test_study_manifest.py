"""Cohort manifests: columns, relative paths, public layout, and their errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from totalseg.errors import ImageFileError, InputError
from totalseg.study import normalize_sex, read_manifest


def _write(tmp_path: Path, text: str, name: str = "cohort.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_columns_paths_and_covariates(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "path,subject_id,age,sex,seg_path,scanner,bmi\n"
        "scans/a.nii.gz,P1,61.5,male,masks/a,Siemens,24.1\n"
        "/data/b_dicom,P2,,F,,GE,\n",
    )
    a, b = read_manifest(path)
    assert a.scan_id == "P1" and a.subject_id == "P1"
    assert a.path == str(tmp_path / "scans/a.nii.gz")
    assert a.seg_path == str(tmp_path / "masks/a")
    assert (a.age, a.sex) == (61.5, "M")
    assert dict(a.covariates) == {"scanner": "Siemens", "bmi": "24.1"}
    assert b.path == "/data/b_dicom" and math.isnan(b.age) and b.seg_path is None


def test_semicolons_scan_id_column_and_custom_seg_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "scan_id;path;subject_id;mask\nx1;a.nii;P1;m1\nx2;b.nii;P1;m2\n")
    specs = read_manifest(path, seg_column="mask")
    assert [s.scan_id for s in specs] == ["x1", "x2"]
    assert [s.subject_id for s in specs] == ["P1", "P1"]
    assert specs[1].seg_path == str(tmp_path / "m2")
    assert "mask" not in specs[0].covariates


def test_public_layout_folder(tmp_path: Path) -> None:
    (tmp_path / "meta.csv").write_text("image_id;age;gender;institute;split\ns0001;44;f;B;test\n")
    (spec,) = read_manifest(tmp_path)
    assert spec.scan_id == "s0001"
    assert spec.path == str(tmp_path / "s0001" / "ct.nii.gz")
    assert spec.seg_path == str(tmp_path / "s0001" / "segmentations")
    assert (spec.age, spec.sex) == (44.0, "F")
    assert dict(spec.covariates) == {"institute": "B", "split": "test"}


@pytest.mark.parametrize(
    ("value", "expected"), [("m", "M"), (" Female ", "F"), ("", None), ("x", "x")]
)
def test_normalize_sex(value: str, expected: str | None) -> None:
    assert normalize_sex(value) == expected


def test_missing_path_column(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Expected a 'path' column"):
        read_manifest(_write(tmp_path, "subject_id,age\nP1,50\n"))


def test_duplicate_scan_ids(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"unique scan ids.*'ct' twice"):
        read_manifest(_write(tmp_path, "path\na/ct.nii.gz\nb/ct.nii.gz\n"))


def test_bad_age(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"number of years.*'fifty'.*line 2"):
        read_manifest(_write(tmp_path, "path,age\na.nii,fifty\n"))


def test_empty_path_cell(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="got an empty cell"):
        read_manifest(_write(tmp_path, "path,age\n,50\n"))


def test_empty_and_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least one scan"):
        read_manifest(_write(tmp_path, "path,age\n"))
    with pytest.raises(ImageFileError, match="got no file"):
        read_manifest(tmp_path / "nope.csv")
