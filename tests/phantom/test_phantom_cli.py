"""`totalseg phantom` and `totalseg phantom cohort` from the command line."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from totalseg.cli.app import main


def test_phantom_command_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(
        [
            "phantom",
            "--n",
            "1",
            "--out",
            str(out),
            "--fov",
            "abdomen",
            "--spacing-mm",
            "10",
            "--phase",
            "arterial",
            "--orientation",
            "LPS",
            "--class-map",
            "v1",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "Wrote 1 phantom to" in captured.out and "━" not in captured.out  # bar on stderr
    from totalseg.io import is_phantom_file

    assert is_phantom_file(out / "s0000" / "ct.nii.gz")  # the marker the demo warning reads
    with (out / "meta.csv").open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    assert rows[0]["phase"] == "arterial" and rows[0]["orientation"] == "LPS"
    assert len(list((out / "s0000" / "segmentations").iterdir())) == 104


def test_cohort_command_writes_the_statistics_table(tmp_path, capsys):
    rc = main(["phantom", "cohort", "--n", "2", "--out", str(tmp_path), "--spacing-mm", "10"])
    assert rc == 0
    assert "Wrote 248 rows" in capsys.readouterr().out
    header = (tmp_path / "cohort_stats.csv").read_text().splitlines()[0]
    assert header == "image_id;age;sex;height_cm;bmi;structure;volume_ml;mean_hu"


def test_cohort_engine_and_height_trend_options(tmp_path, capsys):
    import pandas as pd

    tables = {}
    for name, extra in (
        ("model", []),
        ("flat", ["--height-trend", "0"]),
        ("render", ["--engine", "render", "--spacing-mm", "10"]),
    ):
        out = tmp_path / name
        assert main(["phantom", "cohort", "--n", "3", "--out", str(out), *extra]) == 0
        tables[name] = pd.read_parquet(out / "cohort_stats.parquet")
    capsys.readouterr()
    model, flat, render = (
        tables[k].drop_duplicates("image_id") for k in ("model", "flat", "render")
    )
    assert (model["age"].to_numpy() == flat["age"].to_numpy()).all()
    older = model["age"].to_numpy() > 50  # the trend makes the older shorter, the younger taller
    shift = model["height_cm"].to_numpy() - flat["height_cm"].to_numpy()
    assert (np.sign(shift) == np.where(older, -1, 1)).all()
    assert (render["height_cm"].to_numpy() == model["height_cm"].to_numpy()).all()
    assert main(["phantom", "cohort", "--n", "2", "--out", str(tmp_path), "--engine", "x"]) == 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["phantom", "--n", "1", "--out", "X", "--fov", "legs"], 2, "legs"),
        (["phantom", "--n", "1", "--out", "X", "--phase", "delayed"], 2, "delayed"),
        (["phantom", "--n", "1", "--out", "X", "--class-map", "v3"], 2, "v3"),
        (["phantom", "--n", "0", "--out", "X"], 2, "at least 1 subject"),
        (["phantom", "--n", "1", "--out", "X", "--jobs", "0"], 2, "at least 1 job"),
        (["phantom", "--n", "1"], 2, "output folder is required"),
        (["phantom", "--n", "1", "--out", "X", "--orientation", "XYZ"], 1, "orientation code"),
        (["phantom", "--n", "1", "--out", "X", "--spacing-mm", "50"], 1, "spacing between"),
        (["phantom", "cohort", "--n", "2", "--out", "X", "--mode", "video"], 2, "video"),
        (["phantom", "cohort", "--n", "2"], 2, "--out"),
        (
            ["phantom", "cohort", "--n", "2", "--out", "X", "--spacing-mm", "0.2"],
            1,
            "statistics spacing",
        ),
    ],
)
def test_bad_options_are_reported(args, code, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == code
    assert message in capsys.readouterr().err


def test_old_spacing_flag_still_works_with_a_warning(tmp_path, capsys) -> None:
    rc = main(["phantom", "cohort", "--n", "2", "--out", str(tmp_path), "--spacing", "10"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "--spacing is deprecated; use --spacing-mm" in captured.err
    assert "for 2 subjects" in captured.out
    assert main(["phantom", "--help"]) == 0
    assert "--spacing-mm" in capsys.readouterr().out
