"""`totalseg segment` end to end on tiny random-init weights in a temporary home."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from totalseg.anatomy import class_map
from totalseg.cli.app import main
from totalseg.io import read_label_map
from totalseg.pipeline import Segmenter, SegmentOptions


@pytest.fixture
def home(weights_home, monkeypatch):
    monkeypatch.setenv("TOTALSEG_HOME", str(weights_home))
    return weights_home


@pytest.fixture
def ct_file(tmp_path, phantom, affine_of):
    def make(name: str = "ct.nii.gz", seed: int = 0, folder=None):
        path = (folder or tmp_path) / name
        img = nib.Nifti1Image(phantom((26, 30, 17), seed=seed), affine_of("LPS", (2.5, 2.8, 3.4)))
        img.header["descrip"] = b"totalseg test input"
        nib.save(img, path)
        return path

    return make


def test_per_class_masks_for_every_class(home, ct_file, tmp_path, capsys):
    path = ct_file()
    out = tmp_path / "masks"
    assert (
        main(
            ["segment", "-i", str(path), "-o", str(out), "--task", "total-fast", "--device", "cpu"]
        )
        == 0
    )
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 117 and "liver.nii.gz" in files
    expected = Segmenter("total-fast", device="cpu", options=SegmentOptions(home=home))(path)
    liver = nib.load(out / "liver.nii.gz")
    assert liver.get_data_dtype() == np.uint8 and liver.shape == (26, 30, 17)
    assert liver.header["descrip"].tobytes().startswith(b"totalseg test input")
    np.testing.assert_array_equal(np.asarray(liver.dataobj), np.asarray(expected.array) == 5)
    assert "wrote 117 masks" in capsys.readouterr().out


def test_multilabel_with_roi_subset_and_parity(home, ct_file, tmp_path):
    path = ct_file()
    out = tmp_path / "seg.nii.gz"
    rc = main(["segment", "-i", str(path), "-o", str(out), "--ml", "--task", "total-fast",
               "--roi-subset", "liver,spleen", "--roi-subset", "aorta", "--parity",
               "--device", "cpu"])  # fmt: skip
    assert rc == 0
    labels = read_label_map(out)
    assert dict(labels.labels) == {1: "spleen", 5: "liver", 52: "aorta"}
    assert set(labels.present_labels()) <= {1, 5, 52}


def test_several_inputs_and_a_folder_keep_models_loaded(home, ct_file, tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    ct_file("a.nii.gz", 1, folder)
    ct_file("b.nii", 2, folder)
    single = ct_file("c.nii.gz", 3)
    out = tmp_path / "out"
    rc = main(["segment", "-i", str(folder), str(single), "-o", str(out), "--ml",
               "--task", "total-fastest", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    # named by case id, never like the input files themselves
    assert sorted(p.name for p in out.iterdir()) == ["a_seg.nii.gz", "b_seg.nii.gz", "c_seg.nii.gz"]
    assert dict(read_label_map(out / "b_seg.nii.gz").labels) == class_map("v2")


def test_a_corrupt_input_among_several_is_reported_and_the_rest_written(
    home, ct_file, tmp_path, capsys
):
    folder = tmp_path / "cases"
    folder.mkdir()
    ct_file("a.nii.gz", 1, folder)
    (folder / "b.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    ct_file("c.nii.gz", 3, folder)
    out = tmp_path / "out"
    rc = main(["segment", "-i", str(folder), "-o", str(out), "--ml",
               "--task", "total-fastest", "--device", "cpu"])  # fmt: skip
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_seg.nii.gz", "c_seg.nii.gz"]
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2 and "b.nii.gz" in lines[0] and "b.nii.gz" in lines[1], lines
    assert "1 of 3 failed" in err and "2 finished" in err
    assert "Traceback" not in err


def test_public_dataset_cases_are_named_by_their_folder(home, ct_file, tmp_path):
    cases = []
    for i, case in enumerate(("s0001", "s0002")):
        (tmp_path / case).mkdir()
        cases.append(str(ct_file("ct.nii.gz", i, tmp_path / case)))
    out = tmp_path / "preds"
    rc = main(["segment", "-i", *cases, "-o", str(out), "--ml", "--task", "total-fastest",
               "--device", "cpu"])  # fmt: skip
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["s0001_seg.nii.gz", "s0002_seg.nii.gz"]


def test_cli_errors_are_one_line(home, ct_file, tmp_path, capsys, monkeypatch):
    path = ct_file()
    cases = [
        (["--roi-subset", "livr"], "Did you mean 'liver'"),
        (
            ["--roi-subset", "liver", "spleen"],
            "give several structures as --roi-subset liver,spleen",
        ),
        (["--ml"], "Expected an output file ending in .nii.gz with --ml"),
        (["--device", "tpu"], "Expected a device among"),
    ]
    for extra, message in cases:
        assert (
            main(
                [
                    "segment",
                    "-i",
                    str(path),
                    "-o",
                    str(tmp_path / "o"),
                    "--task",
                    "total-fast",
                    *extra,
                ]
            )
            == 1
        )
        err = capsys.readouterr().err.strip()
        assert err.startswith("Error: ") and message in err and len(err.splitlines()) == 1
    monkeypatch.setenv("TOTALSEG_HOME", str(tmp_path / "empty"))
    assert main(["segment", "-i", str(path), "-o", str(tmp_path / "o")]) == 1
    assert "are not installed" in capsys.readouterr().err


def test_cli_import_does_not_load_torch():
    code = "import sys; from totalseg.cli.app import app; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_dicom_folder_input(home, shared_data, tmp_path):
    out = tmp_path / "dicom_seg.nii.gz"
    dicom = shared_data / "example_ct_dicom"
    rc = main(["segment", "-i", str(dicom), "-o", str(out), "--ml", "--task", "total-fastest",
               "--device", "cpu"])  # fmt: skip
    assert rc == 0
    from totalseg.io import read_any

    image = read_any(dicom)
    labels = read_label_map(out)
    assert labels.shape == image.shape and np.allclose(labels.affine, image.affine, atol=1e-4)
