"""`totalseg combine` (the reference's totalseg_combine_masks) and `totalseg crop-to-body`."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from totalseg.anatomy import class_map, combination, combination_names
from totalseg.cli.app import main
from totalseg.image import Image, LabelMap
from totalseg.io import read_image, read_label_map, write_image, write_label_map, write_mask_folder

from ..conftest import affine_for

SHAPE = (23, 31, 17)


@pytest.fixture
def v2_labels() -> LabelMap:
    """Every v2 structure as a few voxels of its own, on a non-cubic LPS grid."""
    rng = np.random.default_rng(0)
    array = rng.integers(0, 118, size=SHAPE).astype(np.uint8)
    return LabelMap(array, affine_for("LPS", (1.5, 0.8, 3.0)), class_map("v2"))


def test_combinations_are_the_reference_ones() -> None:
    assert set(combination_names()) == {
        "lung", "lung_left", "lung_right", "vertebrae", "ribs", "vertebrae_ribs", "heart",
        "pelvis", "body",
    }  # fmt: skip
    assert len(combination("ribs")) == 24 and "sternum" not in combination("ribs")
    assert len(combination("vertebrae")) == 26
    assert combination("vertebrae_ribs") == combination("vertebrae") + combination("ribs")


@pytest.mark.parametrize("name", ["lung", "ribs", "pelvis", "heart", "vertebrae_ribs"])
def test_combine_a_mask_folder_and_a_multilabel_file(name, v2_labels, tmp_path, capsys) -> None:
    folder = tmp_path / "masks"
    write_mask_folder(v2_labels, folder)
    multilabel = write_label_map(v2_labels, tmp_path / "seg.nii.gz")
    ids = [i for i, n in class_map("v2").items() if n in combination(name)]
    expected = np.isin(np.asarray(v2_labels.array), ids).astype(np.uint8)
    for source in (folder, multilabel):
        out = tmp_path / f"{name}_{source.name}.nii.gz"
        assert main(["combine", "-i", str(source), "-o", str(out), "-m", name]) == 0
        result = nib.load(out)
        np.testing.assert_array_equal(np.asarray(result.dataobj), expected)
        assert np.allclose(result.affine, v2_labels.affine) and result.get_data_dtype() == np.uint8
    plural = "" if len(ids) == 1 else "s"
    assert f"wrote {out}: {name} = {len(ids)} structure{plural}" in capsys.readouterr().out
    out = tmp_path / "ml.nii.gz"
    assert main(["combine", "-i", str(multilabel), "-o", str(out), "-m", name, "--ml"]) == 0
    assert dict(read_label_map(out).labels) == {1: name}


def test_combine_refuses_incomplete_or_unknown(v2_labels, tmp_path, capsys) -> None:
    folder = tmp_path / "masks"
    write_mask_folder(v2_labels, folder)
    (folder / "rib_left_3.nii.gz").unlink()
    cases = [
        (["-i", str(folder), "-m", "ribs"], "got none for rib_left_3"),
        (["-i", str(folder), "-m", "lungs"], "Did you mean 'lung'"),
        (["-i", str(folder), "-m", "body"], "got none of them"),
    ]
    for args, message in cases:
        assert main(["combine", *args, "-o", str(tmp_path / "x.nii.gz")]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("Error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.nii.gz").exists()


def test_crop_to_body_keeps_patient_coordinates(tmp_path: Path, capsys) -> None:
    data = np.full(SHAPE, -1000, dtype=np.int16)
    data[6:15, 9:25, 4:12] = 40  # the body
    affine = affine_for("PIR", (1.5, 0.8, 3.0))
    ct = write_image(Image(data, affine), tmp_path / "ct.nii.gz")
    out = tmp_path / "body.nii.gz"
    assert main(["crop-to-body", "-i", str(ct), "-o", str(out), "--margin-mm", "0"]) == 0
    cropped = read_image(out)
    body = np.asarray(cropped.array) == 40
    assert np.prod(cropped.shape) < np.prod(SHAPE) and body.sum() == (data == 40).sum()
    # every voxel keeps its patient coordinates: the body's first corner is where it was
    i, j, k = (int(np.flatnonzero(body.any(axis=a))[0]) for a in ((1, 2), (0, 2), (0, 1)))
    first_body = cropped.affine @ np.array([i, j, k, 1.0])
    np.testing.assert_allclose(first_body, affine @ np.array([6, 9, 4, 1.0]), atol=1e-6)
    assert "wrote" in capsys.readouterr().out
    air = write_image(Image(np.full(SHAPE, -1000, np.int16), affine), tmp_path / "air.nii.gz")
    assert main(["crop-to-body", "-i", str(air), "-o", str(tmp_path / "a.nii.gz")]) == 1
    assert "found none" in capsys.readouterr().err
