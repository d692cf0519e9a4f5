"""Normative reference curves against the phantom cohort's truth, the table format, z-scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from totalseg.cli.app import main
from totalseg.errors import ConfigError, InputError
from totalseg.phantom import generate_cohort
from totalseg.phantom.cohort_model import model_statistics, true_log_volume
from totalseg.phantom.dataset import subject_seed
from totalseg.study.reference import (
    REFERENCE_COLUMNS,
    ReferenceConfig,
    fit_reference,
    percentile_column,
)
from totalseg.study.table import load_study_table
from totalseg.study.zscore import ReferenceTable

pytest.importorskip("statsmodels")

STRUCTURES = ("liver", "kidney_left", "vertebrae_L3", "spleen")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    generate_cohort(800, seed=0).to_parquet(folder / "cohort_stats.parquet")
    return folder


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200-subject cohort of 3 structures, for the command line."""
    folder = tmp_path_factory.mktemp("small")
    table = generate_cohort(200, seed=1)
    table = table.loc[table["structure"].isin(["liver", "kidney_left", "spleen"])]
    table.to_parquet(folder / "cohort_stats.parquet")
    return folder


@pytest.fixture(scope="module")
def fitted(cohort: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = load_study_table(cohort)
    frame = frame.loc[frame["structure"].isin(STRUCTURES)]
    return fit_reference(frame, min_volumes_ml={}, config=ReferenceConfig(measures=("volume_ml",)))


@pytest.mark.parametrize("sex", ["F", "M"])
def test_curves_recover_the_true_percentiles(fitted, sex: str) -> None:
    """Within 3 standard errors (the fit's own, `location_se` and `log_scale_se`) of the
    percentile, and within half a population SD, at several ages of both sexes."""
    table, _ = fitted
    for structure in STRUCTURES:
        curve = table.loc[(table["structure"] == structure) & (table["sex"] == sex)]
        for age in (35.0, 50.0, 65.0, 80.0):
            row = curve.loc[curve["age"] == age].iloc[0]
            mean, sd = true_log_volume(structure, age_years=age, sex=sex)
            for p in (2.5, 25.0, 50.0, 75.0, 97.5):
                z = stats.norm.ppf(p / 100)
                se = np.hypot(row["location_se"], z * row["scale"] * row["log_scale_se"])
                error = np.log(row[percentile_column(p)]) - (mean + z * sd)
                assert abs(error) < 3 * se, (structure, sex, age, p, error / se)
                assert abs(error) < 0.6 * sd


def test_bands_give_sample_sizes_and_coverage(fitted) -> None:
    table, bands = fitted
    assert tuple(table.columns) == REFERENCE_COLUMNS and set(table["schema_version"]) == {1}
    liver_f = bands.loc[(bands["structure"] == "liver") & (bands["sex"] == "F")]
    n_f = int(table.loc[(table["structure"] == "liver") & (table["sex"] == "F"), "n_sex"].iloc[0])
    assert liver_f["n"].sum() == n_f
    weights = bands["n"] / bands["n"].sum()
    assert 0.01 < float((bands["frac_below_p2_5"].fillna(0) * weights).sum()) < 0.045
    assert 0.01 < float((bands["frac_above_p97_5"].fillna(0) * weights).sum()) < 0.045


def test_z_score_of_a_known_phantom_matches_its_true_z(fitted) -> None:
    table, _ = fitted
    reference = ReferenceTable(table, where="memory")
    for index in range(5000, 5006):  # subjects outside the reference cohort
        rows = {r["structure"]: r for r in model_statistics(subject_seed(0, index))}
        for structure in ("liver", "kidney_left"):
            r = rows[structure]
            mean, sd = true_log_volume(structure, age_years=r["age"], sex=r["sex"])
            true_z = (np.log(r["volume_ml"]) - mean) / sd
            score = reference.score(
                structure, "volume_ml", r["volume_ml"], age=r["age"], sex=r["sex"]
            )
            assert score.z == pytest.approx(true_z, abs=0.3), (index, structure)
            assert score.percentile == pytest.approx(100 * stats.norm.cdf(score.z))
            assert score.outside_band == (abs(score.z) > 1.96)


def test_scores_outside_the_support(fitted) -> None:
    reference = ReferenceTable(fitted[0], where="memory")
    old = reference.score("liver", "volume_ml", 1500.0, age=120.0, sex="F")
    assert "outside the reference's support" in old.note and old.z == old.z
    assert "outside the reference's support" in reference.support_note(age=5.0, sex="M")
    assert reference.support_note(age=60.0, sex="M") == ""
    other = reference.score("liver", "volume_ml", 1500.0, age=60.0, sex="X")
    assert other.z != other.z and "no sex" in other.note
    assert reference.score("brain", "volume_ml", 1.0, age=60, sex="F").note


def test_cli_writes_a_versioned_documented_reference(small: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ref"
    argv = ["study", "reference", str(small), "--out", str(out), "--structures", "kidney_left"]
    assert main(argv) == 0, capsys.readouterr().err
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(out / "reference.parquet").metadata[b"totalseg_reference"])
    assert meta["schema_version"] == 1 and set(meta["columns"]) == set(REFERENCE_COLUMNS)
    assert json.loads((out / "reference.json").read_text())["n_scans"] == 200
    csv = pd.read_csv(out / "reference.csv")
    assert set(csv["schema_version"]) == {1} and csv["structure"].nunique() == 3
    fans = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert fans == ["fan_mean_hu_kidney_left.png", "fan_volume_ml_kidney_left.png"]
    assert ReferenceTable.load(out).sexes == {"F", "M"}
    assert ReferenceTable.load(out / "reference.csv").sexes == {"F", "M"}


def test_reference_errors(small: Path, tmp_path: Path, capsys) -> None:
    argv = ["study", "reference", str(small), "--out", str(tmp_path / "r")]
    assert main([*argv, "--min-n", "5000"]) == 1
    assert "Expected at least 5000 measurements" in capsys.readouterr().err
    assert main([*argv, "--structures", "kidney_middle"]) == 1
    assert "Expected structures of the reference" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="age band of 1-50"):
        ReferenceConfig(band_years=0.5)
    with pytest.raises(InputError, match="schema version 1"):
        ReferenceTable(pd.DataFrame({"schema_version": [7]}), where="x")
    with pytest.raises(InputError, match="Expected a reference folder"):
        ReferenceTable.load(tmp_path)


def test_analyze_report_shows_the_percentile_fans(small: Path, tmp_path: Path, capsys) -> None:
    ref, report = tmp_path / "ref", tmp_path / "report"
    argv = ["study", "reference", str(small), "--out", str(ref), "--max-figures", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    argv = ["study", "analyze", str(small), "--out", str(report), "--max-figures", "0"]
    bounds = tmp_path / "bounds.csv"
    bounds.write_text("structure,min_volume_ml\nliver,0\n")
    assert main([*argv, "--reference", str(ref), "--min-volumes", str(bounds)]) == 0
    page = (report / "report.html").read_text()
    assert "Reference percentiles by age and sex" in page
    assert page.count('alt="fan_') == 2  # one per measure
    assert main([*argv, "--reference", str(tmp_path)]) == 1
    assert "Expected percentile fans" in capsys.readouterr().err
