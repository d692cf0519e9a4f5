"""`totalseg stats CT SEG`: multilabel files and mask folders, outputs and error paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from totalseg.cli.app import main
from totalseg.image import Image, LabelMap
from totalseg.io import write_image, write_label_map, write_mask_folder
from totalseg.stats import read_reference_statistics

SHAPE = (20, 24, 16)
AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])
NAMES = {1: "spleen", 5: "liver", 3: "kidney_left"}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    labels = np.zeros(SHAPE, np.uint8)
    labels[5:12, 6:15, 4:10] = 5
    labels[13:16, 16:20, 5:8] = 1
    image = np.full(SHAPE, -100, np.int16)
    image[0, 0, 0] = -1000  # air: a plausible CT (preprocess.plausibility)
    image[labels == 5] = 60
    image[labels == 1] = 45
    label_map = LabelMap(labels, AFFINE, NAMES)
    out = {
        "ct": write_image(Image(image, AFFINE), tmp_path / "ct.nii.gz"),
        "seg": write_label_map(label_map, tmp_path / "seg.nii.gz"),
        "folder": tmp_path / "masks",
    }
    write_mask_folder(label_map, out["folder"])
    return out


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_multilabel_file_to_json(files: dict[str, Path], capsys) -> None:
    doc = _json(capsys, ["stats", str(files["ct"]), str(files["seg"]), "--json"])
    liver = doc["structures"]["liver"]
    assert liver["status"] == "ok" and liver["n_voxels"] == 7 * 9 * 6
    assert liver["volume_ml"] == pytest.approx(7 * 9 * 6 * 12 / 1000)
    assert liver["mean_hu"] == 60.0
    assert doc["structures"]["kidney_left"]["status"] == "absent"


def test_mask_folder_gives_the_same_numbers(files: dict[str, Path], capsys) -> None:
    doc = _json(capsys, ["stats", str(files["ct"]), str(files["folder"]), "--json"])
    assert set(doc["structures"]) == set(NAMES.values())
    assert doc["structures"]["spleen"]["mean_hu"] == 45.0
    assert doc["structures"]["liver"]["label"] == 5  # v2 id of liver


def test_out_csv_and_structure_selection(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "stats.csv"
    argv = ["stats", str(files["ct"]), str(files["seg"]), "-o", str(out), "-s", "liver,spleen"]
    assert main(argv) == 0
    lines = out.read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["liver", "spleen"]
    printed = capsys.readouterr()
    assert "liver" in printed.out and "Wrote" in printed.err


def test_unknown_structure_exits_1_with_a_suggestion(files: dict[str, Path], capsys) -> None:
    assert main(["stats", str(files["ct"]), str(files["seg"]), "-s", "livre"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error:") and "Did you mean 'liver'" in err


def test_grid_mismatch_exits_1(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    other = write_label_map(
        LabelMap(np.zeros((10, 10, 10), np.uint8), AFFINE, NAMES), tmp_path / "other.nii.gz"
    )
    assert main(["stats", str(files["ct"]), str(other)]) == 1
    assert "on the image grid" in capsys.readouterr().err


def test_missing_segmentation_exits_1(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert main(["stats", str(files["ct"]), str(tmp_path / "nothing")]) == 1
    assert "Expected a segmentation file or folder" in capsys.readouterr().err


def test_empty_mask_folder_exits_1(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["stats", str(files["ct"]), str(tmp_path / "empty")]) == 1
    assert "per-class masks" in capsys.readouterr().err


def test_real_example_through_the_cli(shared_data: Path, capsys) -> None:
    ct = shared_data / "example_ct_sm.nii.gz"
    seg = shared_data / "example_seg_fast.nii.gz"  # names from its XML label table
    doc = _json(capsys, ["stats", str(ct), str(seg), "--border-voxels", "0", "--json"])
    reference = read_reference_statistics(shared_data / "example_seg_fast_statistics.json")
    for name, ref in reference.items():
        if ref.reported:
            ours = doc["structures"][name]
            assert ours["volume_mm3"] == pytest.approx(ref.volume_mm3, rel=0.03)
            assert abs(ours["mean_hu"] - ref.mean_hu) < 2.0


def test_dicom_series_with_a_segmentation_in_another_axis_order(shared_data: Path, capsys) -> None:
    import nibabel as nib

    seg_path = shared_data / "example_seg_dicom.nii.gz"  # LAS grid made by dicom2nifti
    argv = ["stats", str(shared_data / "example_ct_dicom"), str(seg_path), "-s", "liver", "--json"]
    liver = _json(capsys, argv)["structures"]["liver"]
    seg = nib.load(seg_path)
    n_voxels = int((np.asarray(seg.dataobj) == 5).sum())
    assert liver["n_voxels"] == n_voxels
    assert liver["volume_mm3"] == pytest.approx(n_voxels * abs(np.linalg.det(seg.affine[:3, :3])))
    assert 60 < liver["mean_hu"] < 120  # contrast-enhanced liver parenchyma
