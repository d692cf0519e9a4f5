"""`totalseg study run` and `totalseg study analyze` end to end (in-process, no Dask)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from totalseg.cli.app import main


def test_run_then_analyze(make_cohort: Callable[..., Path], tmp_path: Path, capsys) -> None:
    cohort = make_cohort(8, corrupt=(6,))
    study = tmp_path / "study"
    argv = ["study", "run", str(cohort), "--out", str(study), "--workers", "0"]
    assert main([*argv, "--from-segmentations", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["n_ok"], summary["n_failed"], summary["counts"]["structure_rows"]) == (7, 1, 21)
    assert "failed" in captured.err and "s0006" in captured.err
    assert (study / "structure_stats.parquet").is_file()

    assert main([*argv, "--from-segmentations"]) == 0
    assert "0 measured, 0 failed, 8 already finished" in capsys.readouterr().out

    report = tmp_path / "report"
    options = ["--min-n", "4", "--json", "--max-figures", "1"]
    options += ["--min-volumes", str(_no_bounds(tmp_path))]
    rc = main(["study", "analyze", str(study), "--out", str(report), *options])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_scans"] == 7 and set(doc["significant_spearman"]) == {
        "all/mean_hu",
        "all/volume_ml",
    }
    assert (report / "report.html").is_file()
    from totalseg.study import load_study_table

    frame = load_study_table(study)  # manifest covariates become columns
    assert set(frame["institute"]) == {"A"} and "covariates_json" not in frame.columns


def _no_bounds(tmp_path: Path) -> Path:
    path = tmp_path / "bounds.csv"
    path.write_text("structure,min_volume_ml,rationale\nliver,0,tiny phantoms\nspleen,0,\n")
    return path


def test_analyze_errors_exit_1(tmp_path: Path, capsys) -> None:
    assert main(["study", "analyze", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert "Expected a study database" in capsys.readouterr().err
    rc = main(["study", "analyze", str(tmp_path), "--out", str(tmp_path / "r"), "--alpha", "2"])
    assert rc == 1
    assert "0 < alpha < 1" in capsys.readouterr().err


def test_run_errors_exit_1(tmp_path: Path, capsys) -> None:
    rc = main(["study", "run", str(tmp_path / "none.csv"), "--out", str(tmp_path / "s")])
    assert rc == 1
    assert "Expected a cohort manifest CSV" in capsys.readouterr().err


def test_help_lists_both_commands(capsys) -> None:
    assert main(["study", "--help"]) == 0
    out = capsys.readouterr().out
    assert "run" in out and "analyze" in out
