"""`evaluate` on two single files (any names), a prediction on the same grid in another axis
order, sample-size warnings, and the NSD tolerance only where NSD is computed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from totalseg.cli.app import main
from totalseg.image import LabelMap
from totalseg.io import write_label_map
from totalseg.metrics.cases import reorient_onto

NAMES = {5: "liver", 1: "spleen"}


def _labels(shift: int = 0) -> np.ndarray:
    a = np.zeros((20, 18, 14), np.uint8)
    a[4 + shift : 12 + shift, 3:11, 2:9] = 5
    a[14:18, 12:16, 5:10] = 1
    return a


def _flip_to_lps(label_map: LabelMap) -> LabelMap:
    """The same voxels stored with i and j reversed (RAS -> LPS): a pure axis reordering."""
    array = np.asarray(label_map.array)[::-1, ::-1, :]
    affine = label_map.affine.copy()
    affine[:3, 3] = label_map.affine[:3, :3] @ [array.shape[0] - 1, array.shape[1] - 1, 0]
    affine[:3, 3] += label_map.affine[:3, 3]
    affine[:, :2] = -label_map.affine[:, :2]
    affine[3, :2] = 0.0
    return LabelMap(np.ascontiguousarray(array), affine, label_map.labels)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    affine = np.diag([1.5, 1.5, 2.5, 1.0])
    truth = LabelMap(_labels(), affine, NAMES)
    pred = LabelMap(_labels(shift=1), affine, NAMES)
    return {
        "truth": write_label_map(truth, tmp_path / "ground_truth.nii.gz"),
        "pred": write_label_map(pred, tmp_path / "my_prediction.nii.gz"),
        "pred_lps": write_label_map(_flip_to_lps(pred), tmp_path / "pred_lps.nii.gz"),
    }


def test_two_files_with_other_names_are_one_case(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", "--pred", str(files["pred"]), "--ref", str(files["truth"]), "--csv-only",
            "--structures", "liver,spleen", "--n-resamples", "50"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "a"), "--metrics", "dice"]) == 0
    captured = capsys.readouterr()
    assert "Evaluated 1 case x 2 structures." in captured.out
    assert "NSD tolerance" not in captured.out  # only Dice was computed
    assert "Warning: 1 case: the 95% CIs span nothing" in captured.err
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert "(NSD tolerance 3 mm)" in capsys.readouterr().out
    # the same prediction stored LPS instead of RAS: reoriented, not refused, same numbers
    assert main([*argv, "--out", str(tmp_path / "c"), "--pred", str(files["pred_lps"])]) == 0
    capsys.readouterr()
    same = [json.loads((tmp_path / d / "summary.json").read_text())["overall"] for d in "bc"]
    assert same[0] == same[1]
    assert same[0]["dice"]["mean"] < 1.0


def test_reorient_onto_only_permutes_and_flips() -> None:
    affine = np.diag([1.5, 1.5, 2.5, 1.0])
    original = LabelMap(_labels(), affine, NAMES)
    lps = _flip_to_lps(original)
    back = reorient_onto(lps, (original.shape, original.affine))
    np.testing.assert_array_equal(np.asarray(back.array), np.asarray(original.array))
    np.testing.assert_allclose(back.affine, original.affine)
    shifted = np.diag([1.5, 1.5, 2.5, 1.0])
    shifted[0, 3] = 0.7  # another grid: left as is for the grid check to report
    assert reorient_onto(original, (original.shape, shifted)) is original


def test_few_pairs_warn_about_wilcoxon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = ["case,structure,metric,value,status"]
    for i in range(3):
        rows.append(f"c{i},liver,dice,{0.9 + i / 100},ok")
        rows.append(f"c{i},liver,nsd,{0.8 + i / 100},ok")
    for name, delta in (("a", 0.0), ("b", 0.05)):
        folder = tmp_path / name
        folder.mkdir()
        text = "\n".join(rows).replace("0.9", f"{0.9 - delta:.2f}")
        (folder / "metrics.csv").write_text(text + "\n")
    rc = main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c"),
               "--n-resamples", "50"])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    assert "only 3 cases: bootstrap 95% CIs are unreliable" in err
    assert "only 3 paired cases: a Wilcoxon signed-rank test cannot reach P < .05" in err
