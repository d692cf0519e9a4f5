"""`totalseg stats CT SEG --reference REF --age A --sex S`: percentiles and z-scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from totalseg.cli.app import main

pytest.importorskip("statsmodels")

LIVER_ML = 8 * 8 * 7 * 4 * 4 * 5 / 1000  # the liver box of `scan_arrays`


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Liver volume lognormal around LIVER_ML * exp(-0.25) with sd 0.1 (log): the scan sits
    at z = +2.5; spleen HU normal around 44 +- 10."""
    from totalseg.study.reference import write_reference

    root = tmp_path_factory.mktemp("ref")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(600):
        age, sex = rng.uniform(30, 80), "F" if i % 2 else "M"
        liver = LIVER_ML * np.exp(-0.25 + 0.1 * rng.normal())
        rows.append((f"s{i}", age, sex, "liver", liver, 60 + rng.normal()))
        rows.append(
            (f"s{i}", age, sex, "spleen", 3.0 * rng.lognormal(0, 0.1), 44 + 10 * rng.normal())
        )
    columns = ["scan_id", "age", "sex", "structure", "volume_ml", "mean_hu"]
    pd.DataFrame(rows, columns=columns).to_parquet(root / "table.parquet")
    bounds = root / "bounds.csv"  # the boxes are far below the adult organ bounds
    bounds.write_text("structure,min_volume_ml\nliver,0\nspleen,0\n")
    write_reference(root / "table.parquet", root / "ref", max_figures=0, min_volumes=bounds)
    return root / "ref"


def _scan(make_cohort) -> tuple[Path, Path]:
    folder = make_cohort(1) / "s0000"  # the boxes of `scan_arrays(0)`
    return folder / "ct.nii.gz", folder / "segmentations"


def test_stats_scores_every_structure_against_the_reference(
    reference: Path, make_cohort, capsys
) -> None:
    ct, seg = _scan(make_cohort)
    argv = ["stats", str(ct), str(seg), "--reference", str(reference)]
    assert main([*argv, "--age", "63", "--sex", "f", "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)["reference"]
    assert (doc["age"], doc["sex"], doc["support_note"]) == (63.0, "F", "")
    scores = {(s["structure"], s["measure"]): s for s in doc["scores"]}
    liver = scores[("liver", "volume_ml")]
    assert liver["value"] == pytest.approx(LIVER_ML)
    assert liver["z"] == pytest.approx(2.5, abs=0.4) and liver["outside_band"] is True
    assert liver["percentile"] > 97.5
    assert scores[("kidney_right", "volume_ml")]["note"] == "structure not in the reference"
    assert scores[("kidney_right", "volume_ml")]["z"] is None

    assert main([*argv, "--age", "95", "--sex", "m"]) == 0
    captured = capsys.readouterr()
    assert "outside the reference's support for sex M" in captured.err
    assert "Against the reference" in captured.out and "high" in captured.out


def test_stats_reference_errors(reference: Path, make_cohort, tmp_path: Path, capsys) -> None:
    ct, seg = _scan(make_cohort)
    assert main(["stats", str(ct), str(seg), "--reference", str(reference), "--age", "60"]) == 1
    assert "Expected --age and --sex with --reference" in capsys.readouterr().err
    argv = ["stats", str(ct), str(seg), "--reference", str(reference), "--age", "60"]
    assert main([*argv, "--sex", "x"]) == 1
    assert "Expected --sex m or f" in capsys.readouterr().err
    assert main([*argv, "--sex", "f", "--reference", str(tmp_path)]) == 1
    assert "Expected a reference folder" in capsys.readouterr().err
