"""`study run` when things go wrong: missing weights stop it before any scan, failures are
reported once, and the exit code says when every scan (or, with --fail-on-error, any) failed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from totalseg.cli.app import main


def test_every_scan_failing_exits_1_and_each_error_is_said_once(
    make_cohort: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = make_cohort(2, corrupt=(0, 1))
    argv = ["study", "run", str(cohort), "--out", str(tmp_path / "s"), "--workers", "0",
            "--from-segmentations"]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "2 scans: 0 measured, 2 failed" in captured.out
    assert captured.err.count("s0000:") == 1 and captured.err.count("s0001:") == 1
    assert "Error: every scan of this run failed" in captured.err


def test_some_failures_exit_0_unless_fail_on_error(
    make_cohort: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = make_cohort(2, corrupt=(1,))
    argv = ["study", "run", str(cohort), "--workers", "0", "--from-segmentations"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert "1 measured, 1 failed" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "b"), "--fail-on-error"]) == 1
    assert "Error: 1 scan(s) of this run failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "total-fast"], "are not installed"),
        (["--task", "totl-fast"], "Unknown task 'totl-fast'"),
        (["--model-dir", "nowhere"], "Expected an nnU-Net model folder with plans.json"),
    ],
)
def test_an_unusable_model_stops_the_run_before_any_scan(
    make_cohort: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, extra: list[str], message: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("TOTALSEG_HOME", str(tmp_path / "empty_home"))
    out = tmp_path / "s"
    rc = main(["study", "run", str(make_cohort(1)), "--out", str(out), "--workers", "2", *extra])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err and len(err.splitlines()) == 1
    assert not out.exists()  # no store, no cluster, no scan
