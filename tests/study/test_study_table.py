"""Long tables (the stats-mode cohort layout) as the source of `study analyze`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from totalseg.cli.app import main
from totalseg.errors import InputError
from totalseg.study import load_study_table


def _long_table(n: int = 40, seed: int = 3) -> pd.DataFrame:
    """Cohort layout: image_id, no status, lower-case sex, covariates height_cm and bmi."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        age, height = rng.uniform(20, 90), rng.normal(170, 8)
        for name, base in (("liver", 1500.0), ("spleen", 200.0), ("kidney_left", 150.0)):
            volume = 0.0 if (name == "spleen" and i == 0) else base * rng.lognormal(0, 0.1)
            rows.append(
                {
                    "image_id": f"s{i:04d}",
                    "age": age,
                    "sex": "f" if i % 2 else "m",
                    "height_cm": height,
                    "bmi": rng.uniform(18, 35),
                    "structure": name,
                    "volume_ml": volume - (age - 50) * 0.5 * (name == "kidney_left"),
                    "mean_hu": 50.0 + rng.normal(0, 5) if volume else np.nan,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("layout", ["folder_parquet", "folder_csv", "csv", "parquet"])
def test_long_table_layouts_load_alike(tmp_path: Path, layout: str) -> None:
    table = _long_table()
    if layout == "folder_parquet":
        table.to_parquet(tmp_path / "cohort_stats.parquet", index=False)
        source = tmp_path
    elif layout == "folder_csv":
        table.to_csv(tmp_path / "cohort_stats.csv", sep=";", index=False)
        source = tmp_path
    elif layout == "csv":
        source = tmp_path / "t.csv"
        table.to_csv(source, index=False)
    else:
        source = tmp_path / "t.parquet"
        table.to_parquet(source, index=False)
    frame = load_study_table(source)
    assert {"scan_id", "status", "height_cm", "bmi"} <= set(frame.columns)
    assert frame["scan_id"].nunique() == 40 and set(frame["sex"]) == {"M", "F"}
    spleen0 = frame.loc[(frame["scan_id"] == "s0000") & (frame["structure"] == "spleen")]
    assert spleen0["status"].tolist() == ["absent"]
    assert (frame["status"] == "ok").sum() == len(frame) - 1
    assert frame["height_cm"].to_numpy() == pytest.approx(table["height_cm"].to_numpy())


def test_long_table_without_a_required_column_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    _long_table().drop(columns="mean_hu").to_parquet(path)
    with pytest.raises(InputError, match=r"long table .* without \['mean_hu'\]"):
        load_study_table(path)


def test_a_folder_without_either_table_names_both(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"study database .* or a cohort table"):
        load_study_table(tmp_path)


def test_study_analyze_accepts_a_cohort_folder(tmp_path: Path, capsys) -> None:
    _long_table().to_parquet(tmp_path / "cohort_stats.parquet", index=False)
    out = tmp_path / "report"
    rc = main(["study", "analyze", str(tmp_path), "--out", str(out), "--max-figures", "1"])
    assert rc == 0, capsys.readouterr().err
    spearman = pd.read_csv(out / "spearman.csv")
    kidney = spearman.loc[
        (spearman["structure"] == "kidney_left") & (spearman["measure"] == "volume_ml")
    ]
    assert kidney["r_s"].iloc[0] < -0.3
    assert (out / "report.html").is_file()
