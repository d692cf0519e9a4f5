from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from totalseg.cli.app import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("totalseg ")


def test_help_does_not_import_torch():
    code = (
        "import sys; from totalseg.cli.app import main; main(['--help']); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


@pytest.mark.parametrize(
    ("version", "n", "groups"), [("v1", 104, (27, 59, 10, 8)), ("v2", 117, None)]
)
def test_info_classes_json(capsys, version, n, groups):
    assert main(["info", "classes", "--version", version, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_classes"] == n == len(doc["classes"])
    if groups:
        assert tuple(doc["groups"].values()) == groups
        assert sum(doc["groups"].values()) == 104
    spleen = next(c for c in doc["classes"] if c["name"] == "spleen")
    assert spleen["snomed"]["type"] == {"value": "78961009", "meaning": "Spleen", "scheme": "SCT"}


def test_info_classes_table(capsys):
    assert main(["info", "classes"]) == 0
    out = capsys.readouterr().out
    assert "costal_cartilages" in out
    assert "SCT 78961009 Spleen" in out


def test_info_structure_unknown_name_is_one_line(capsys):
    assert main(["info", "structure", "livr"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "Error: Unknown structure 'livr'. Did you mean 'liver'? "
        "List the names with `totalseg info classes`."
    )


def test_usage_error_exit_2(capsys):
    assert main(["info", "classes", "--version", "v9"]) == 2


def test_convert_nifti(tmp_path, capsys, make_affine):
    src = tmp_path / "in.nii"
    nib.save(
        nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), make_affine("LPS")), src
    )
    assert main(["convert", str(src), str(tmp_path / "out.nii.gz")]) == 0
    out = nib.load(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), np.arange(60).reshape(3, 4, 5))
    assert "LPS" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: nib.save(
                nib.Nifti1Image(np.ones((4, 5), np.int16), np.eye(4)), p / "a.nii.gz"
            ),
            "2D slice cannot be segmented",
        ),
        (
            lambda p: nib.save(
                nib.Nifti1Image(np.ones((2, 2, 2, 1, 2), np.int16), np.eye(4)), p / "a.nii.gz"
            ),
            r"got shape \(2, 2, 2, 1, 2\)",
        ),
        (
            lambda p: (p / "a.nii.gz").write_bytes(b"\x1f\x8b garbage"),
            "truncated or corrupt|could not be opened",
        ),
    ],
    ids=["2d", "5d", "corrupt"],
)
def test_convert_bad_nifti_is_one_line_no_traceback(tmp_path, capsys, make, message):
    make(tmp_path)
    rc = main(["convert", str(tmp_path / "a.nii.gz"), str(tmp_path / "out.nii.gz")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    import re

    assert re.search(message, err)
    assert not (tmp_path / "out.nii.gz").exists()


def test_convert_wrong_output_suffix(tmp_path, capsys):
    assert main(["convert", str(tmp_path), str(tmp_path / "out.png")]) == 1
    assert "ending in .nii or .nii.gz" in capsys.readouterr().err


def test_debug_shows_traceback(tmp_path, capsys):
    (tmp_path / "a.nii.gz").write_bytes(b"junk")
    rc = main(["--debug", "convert", str(tmp_path / "a.nii.gz"), str(tmp_path / "o.nii.gz")])
    assert rc == 1
    assert "Traceback" in capsys.readouterr().err
