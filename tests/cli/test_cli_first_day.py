"""A newcomer's rough edges, through the CLI and the API: the demo-model warning, logging
flags anywhere, the missing-input hint, the Python API (help, nibabel input, LabelMap.save),
help screens without `<bool>`, singular/plural and results never glued to the progress bar."""

from __future__ import annotations

import logging
import pydoc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import totalseg
from totalseg.cli.app import main, split_log_flags
from totalseg.errors import InputError
from totalseg.image import LabelMap
from totalseg.io import PHANTOM_DESCRIPTION, read_label_map, write_image


@pytest.fixture
def real_ct(tmp_path: Path) -> Path:
    """A small CT-like volume that is not a phantom (no marker in its header)."""
    rng = np.random.default_rng(0)
    data = rng.normal(-200, 300, (24, 22, 18)).astype(np.int16)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([4.0, 4.0, 4.0, 1.0])), path)
    return path


def test_demo_task_on_a_real_scan_warns_once(
    real_ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    second = tmp_path / "other.nii.gz"
    second.write_bytes(real_ct.read_bytes())
    rc = main(["segment", "-i", str(real_ct), str(second), "-o", str(tmp_path / "out"),
               "--task", "demo", "--device", "cpu", "--roi-subset", "liver"])  # fmt: skip
    assert rc == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "trained on synthetic phantoms only" in warnings[0]
    assert "totalseg weights download total" in warnings[0]
    # one structure: singular, and each result on its own line (never glued to the bar)
    assert captured.out.splitlines() == [
        f"wrote 1 mask to {tmp_path / 'out' / 'scan'}",
        f"wrote 1 mask to {tmp_path / 'out' / 'other'}",
    ]


def test_demo_task_on_a_phantom_does_not_warn(
    real_ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from totalseg.io import read_image

    phantom = write_image(
        read_image(real_ct), tmp_path / "p.nii.gz", description=PHANTOM_DESCRIPTION
    )
    assert main(["segment", "-i", str(phantom), "-o", str(tmp_path / "p_seg.nii.gz"), "--ml",
                 "--task", "demo", "--device", "cpu"]) == 0  # fmt: skip
    assert "Warning" not in capsys.readouterr().err


def test_log_flags_work_before_or_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert split_log_flags(["segment", "-i", "x", "-v"]) == (["segment", "-i", "x"], "verbose")
    assert split_log_flags(["--debug", "stats", "-q"]) == (["stats"], "debug")
    assert split_log_flags(["info", "--", "-v"]) == (["info", "--", "-v"], None)
    for argv in (["-v", "info", "tasks"], ["info", "tasks", "-v"], ["info", "-q", "tasks"]):
        assert main(argv) == 0
    assert main(["info", "tasks", "--debug"]) == 0
    assert logging.getLogger("totalseg").level == logging.DEBUG
    assert logging.getLogger("pylibjpeg").level == logging.DEBUG
    assert main(["info", "tasks", "-v"]) == 0
    assert logging.getLogger("totalseg").level == logging.INFO
    for library in ("pylibjpeg", "dask", "distributed", "PIL", "matplotlib", "numba"):
        assert logging.getLogger(library).level == logging.WARNING


def test_segment_with_v_logs_what_it_does(
    real_ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["segment", "-i", str(real_ct), "-o", str(tmp_path / "s.nii.gz"), "--ml",
               "--task", "demo", "--device", "cpu", "-v"])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    assert "INFO totalseg.run:" in err and "24x22x18 voxels" in err and "structures found" in err


def test_a_wrong_input_path_gets_a_path_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo.nii.gz"
    assert main(["segment", "-i", str(missing), "-o", str(tmp_path / "o"), "--task", "demo"]) == 1
    err = capsys.readouterr().err
    assert "does not exist; check the path" in err and "roi-subset" not in err


def test_python_api_help_nibabel_input_and_save(real_ct: Path, tmp_path: Path) -> None:
    text = pydoc.render_doc(totalseg, renderer=pydoc.plaintext)
    for name in ("segment(", "Segmenter(", "SegmentOptions", "run_segment(", "LabelMap"):
        assert name in text
    assert {"segment", "Segmenter", "SegmentOptions", "run_segment"} <= set(dir(totalseg))
    img = nib.load(real_ct)
    result = totalseg.segment(img, task="demo", device="cpu", roi_subset=["liver", "spleen"])
    from_path = totalseg.segment(real_ct, task="demo", device="cpu", roi_subset=["liver", "spleen"])
    np.testing.assert_array_equal(np.asarray(result.array), np.asarray(from_path.array))
    assert result.shape == img.shape and np.allclose(result.affine, img.affine)
    written = result.save(tmp_path / "seg.nii.gz")
    assert dict(read_label_map(written).labels) == dict(result.labels)
    folder = result.save(tmp_path / "masks")
    assert sorted(p.name for p in folder.iterdir()) == ["liver.nii.gz", "spleen.nii.gz"]
    with pytest.raises(InputError, match="Expected a totalseg Image, a nibabel NIfTI image or a"):
        totalseg.segment([1, 2, 3], task="demo", device="cpu")
    assert isinstance(result, LabelMap)


def test_help_screens_have_no_bool_metavar(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["segment"], ["stats"], ["weights", "download"], ["study", "run"]):
        assert main([*command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "<bool>" not in text and "--help" in text


def test_help_shows_extras_in_square_brackets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rich markup would swallow an unescaped '[openvino]' and leave 'totalseg' alone."""
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["segment", "--help"]) == 0
    assert "'totalseg[openvino]'" in capsys.readouterr().out
