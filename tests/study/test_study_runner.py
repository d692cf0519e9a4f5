"""Cohort runs in this process (workers=0): results, failures, resume, crash safety."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from totalseg.errors import ConfigError, InputError
from totalseg.image import Image, LabelMap
from totalseg.study import ResultStore, StudyConfig, read_manifest, run_study
from totalseg.study import worker as worker_module

IN_PROCESS = StudyConfig(from_segmentations=True, workers=0)


def _db(study: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(study / "study.duckdb"), read_only=True)


def _check_unique(study: Path, n_ok: int, n_structures: int = 3) -> None:
    con = _db(study)
    try:
        rows = con.execute(
            "SELECT count(*), count(DISTINCT (scan_id, structure)) FROM structure_stats"
        ).fetchone()
        assert rows == (n_ok * n_structures, n_ok * n_structures)
        per_scan = con.execute(
            "SELECT min(n), max(n) FROM "
            "(SELECT scan_id, count(*) n FROM structure_stats GROUP BY scan_id)"
        ).fetchone()
        assert per_scan == (n_structures, n_structures)
        assert con.execute("SELECT count(*) FROM scans WHERE status = 'ok'").fetchone()[0] == n_ok
    finally:
        con.close()


def test_from_segmentations_measures_every_scan(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    cohort = make_cohort(4)
    events = []
    summary = run_study(cohort, tmp_path / "study", config=IN_PROCESS, progress=events.append)
    assert (summary.n_ok, summary.n_failed, summary.n_skipped) == (4, 0, 0)
    assert [e.n_done for e in events] == [0, 1, 2, 3, 4]
    _check_unique(tmp_path / "study", 4)
    stats = pd.read_parquet(tmp_path / "study" / "structure_stats.parquet")
    scans = pd.read_parquet(tmp_path / "study" / "scans.parquet")
    assert len(stats) == 12 and len(scans) == 4
    liver = stats.loc[stats["structure"] == "liver"].iloc[0]
    assert liver["n_voxels"] == 8 * 8 * 7 and liver["volume_ml"] == pytest.approx(8 * 8 * 7 * 0.08)
    assert 55 < liver["mean_hu"] < 65
    assert scans["age"].tolist() == [30.0, 33.0, 36.0, 39.0]
    assert scans["covariates_json"].iloc[0] == '{"institute": "A", "split": "train"}'


def test_failures_are_recorded_and_the_run_goes_on(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    cohort = make_cohort(5, empty=(1,), corrupt=(3,))
    summary = run_study(cohort, tmp_path / "study", config=IN_PROCESS)
    assert (summary.n_ok, summary.n_failed) == (3, 2)
    con = _db(tmp_path / "study")
    failed = dict(
        con.execute("SELECT scan_id, reason FROM scans WHERE status = 'failed'").fetchall()
    )
    con.close()
    assert "empty segmentation" in failed["s0001"]
    assert failed["s0003"].startswith("ImageFileError")
    _check_unique(tmp_path / "study", 3)
    again = run_study(cohort, tmp_path / "study", config=IN_PROCESS)
    assert (again.n_skipped, again.n_ok, again.n_failed) == (5, 0, 0)  # failures are final
    retried = run_study(
        cohort,
        tmp_path / "study",
        config=StudyConfig(from_segmentations=True, workers=0, retry_failed=True),
    )
    assert (retried.n_skipped, retried.n_failed) == (3, 2)


def test_missing_segmentation_cell_is_a_recorded_failure(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    ct = make_cohort(1) / "s0000" / "ct.nii.gz"
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"path,age,seg_path\n{ct},50,\nnothing.nii.gz,60,masks\n")
    summary = run_study(manifest, tmp_path / "study", config=IN_PROCESS)
    assert summary.n_failed == 2
    con = _db(tmp_path / "study")
    reasons = dict(con.execute("SELECT scan_id, reason FROM scans").fetchall())
    con.close()
    assert "Expected a segmentation path" in reasons["ct"]
    assert reasons["nothing"].startswith("ImageFileError")


def test_resumed_run_must_keep_its_settings(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    cohort = make_cohort(1)
    run_study(cohort, tmp_path / "study", config=IN_PROCESS)
    with pytest.raises(ConfigError, match=r"border_voxels='3'.*got '0'"):
        run_study(
            cohort,
            tmp_path / "study",
            config=StudyConfig(from_segmentations=True, workers=0, border_voxels=0),
        )


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="workers >= 0"):
        StudyConfig(workers=-1)
    with pytest.raises(ConfigError, match="either from_segmentations or a segmenter"):
        run_study([], "unused", config=IN_PROCESS, segmenter_factory=ThresholdFactory())


@dataclass(frozen=True)
class ThresholdFactory:
    """A fake model: labels voxels by HU range (liver 52..70, spleen 38..52)."""

    def __call__(self) -> Callable[[Image], LabelMap]:
        ThresholdFactory.built += 1  # type: ignore[attr-defined]

        def segment(image: Image) -> LabelMap:
            a = np.asarray(image.array)
            labels = np.where((a >= 52) & (a < 70), 5, np.where((a >= 38) & (a < 52), 1, 0))
            return LabelMap(labels.astype(np.uint8), image.affine, {1: "spleen", 5: "liver"})

        return segment


ThresholdFactory.built = 0  # type: ignore[attr-defined]


def test_segmenter_is_built_once_and_kept(
    make_cohort: Callable[..., Path], tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(worker_module, "_SEGMENTERS", {})
    ThresholdFactory.built = 0  # type: ignore[attr-defined]
    summary = run_study(
        make_cohort(3),
        tmp_path / "study",
        config=StudyConfig(workers=0),
        segmenter_factory=ThresholdFactory(),
    )
    assert summary.n_ok == 3
    assert ThresholdFactory.built == 1  # type: ignore[attr-defined]
    con = _db(tmp_path / "study")
    vol = con.execute("SELECT volume_ml FROM structure_stats WHERE structure = 'liver'").fetchall()
    seg_s = con.execute("SELECT min(segment_s) FROM scans").fetchone()[0]
    con.close()
    assert vol == [(pytest.approx(8 * 8 * 7 * 0.08),)] * 3
    assert seg_s is not None


def test_a_failing_commit_leaves_no_half_scan(
    make_cohort: Callable[..., Path], tmp_path: Path, monkeypatch
) -> None:
    cohort = make_cohort(2)
    original = ResultStore._insert_stats

    def insert_then_crash(self, scan_id, records):
        original(self, scan_id, records)
        if scan_id == "s0001":
            raise RuntimeError("disk full")

    monkeypatch.setattr(ResultStore, "_insert_stats", insert_then_crash)
    with pytest.raises(RuntimeError, match="disk full"):
        run_study(cohort, tmp_path / "study", config=IN_PROCESS)
    _check_unique(tmp_path / "study", 1)  # s0000 committed, nothing of s0001
    monkeypatch.setattr(ResultStore, "_insert_stats", original)
    assert run_study(cohort, tmp_path / "study", config=IN_PROCESS).n_ok == 1
    _check_unique(tmp_path / "study", 2)


def test_killed_run_keeps_finished_scans_and_resumes(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    cohort = make_cohort(6)
    study = tmp_path / "study"
    script = textwrap.dedent(
        f"""
        import os
        from totalseg.study import StudyConfig, run_study

        def crash_after_three(event):
            if event.n_done == 3:
                os._exit(9)  # hard kill right after the third commit

        run_study({str(cohort)!r}, {str(study)!r},
                  config=StudyConfig(from_segmentations=True, workers=0),
                  progress=crash_after_three)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 9, proc.stderr
    _check_unique(study, 3)
    summary = run_study(cohort, study, config=IN_PROCESS)
    assert (summary.n_skipped, summary.n_ok) == (3, 3)
    _check_unique(study, 6)
    assert {s.scan_id for s in read_manifest(cohort)} == set(
        pd.read_parquet(study / "scans.parquet")["scan_id"]
    )


def test_more_config_errors() -> None:
    with pytest.raises(ConfigError, match="border_voxels >= 0"):
        StudyConfig(border_voxels=-2)


class _Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __call__(self):  # pragma: no cover - never built
        raise AssertionError


def test_unhashable_segmenter_factory_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="hashable segmenter factory"):
        worker_module.cached_segmenter(_Unhashable())


def test_a_study_in_use_by_another_process(tmp_path: Path) -> None:
    study = tmp_path / "study"
    ResultStore(study).close()
    code = (
        f"import duckdb, sys; c = duckdb.connect({str(study / 'study.duckdb')!r}); "
        "print('open', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(InputError, match="is another run using this study folder"):
            ResultStore(study)
    finally:
        holder.communicate("", timeout=60)
