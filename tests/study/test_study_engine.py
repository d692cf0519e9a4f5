"""The default segmenter: the engine's `Segmenter` on a tiny random-weight model folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from totalseg.study import StudyConfig, run_study
from totalseg.study import worker as worker_module

NAMES = ["spleen", "kidney_right", "liver"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    writer = pytest.importorskip("totalseg.models.writer")
    folder = (
        tmp_path_factory.mktemp("model")
        / "Dataset999_Tiny"
        / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    )
    writer.random_model_folder(
        folder,
        n_classes=len(NAMES),
        patch_size=(16, 16, 16),
        spacing_mm=4.0,
        features_per_stage=(4, 8),
        strides=((1, 1, 1), (2, 2, 2)),
        kernel_sizes=((3, 3, 3),) * 2,
        label_names=NAMES,
        seed=3,
    )
    return folder


def _rows(study: Path) -> tuple[list[tuple], int]:
    con = duckdb.connect(str(study / "study.duckdb"), read_only=True)
    try:
        scans = con.execute("SELECT scan_id, status, reason, segment_s FROM scans").fetchall()
        n_rows = con.execute("SELECT count(*) FROM structure_stats").fetchone()[0]
        return scans, n_rows
    finally:
        con.close()


def test_default_segmenter_runs_the_model_folder(
    make_cohort: Callable[..., Path], model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setattr(worker_module, "_SEGMENTERS", {})
    config = StudyConfig(workers=0, device="cpu", model_dir=str(model_dir))
    summary = run_study(make_cohort(2), tmp_path / "study", config=config)
    assert summary.n_ok + summary.n_failed == 2
    scans, n_rows = _rows(tmp_path / "study")
    for _scan_id, status, reason, segment_s in scans:
        if status == "ok":
            assert segment_s is not None and segment_s > 0
        else:  # random weights may segment nothing: recorded, never a crash
            assert "empty segmentation" in reason
    assert n_rows == summary.n_ok * len(NAMES)
    assert len(worker_module._SEGMENTERS) == 1  # built once, kept for the second scan


@pytest.mark.slow
def test_default_segmenter_on_a_local_cluster(
    make_cohort: Callable[..., Path], model_dir: Path, tmp_path: Path
) -> None:
    config = StudyConfig(workers=2, device="cpu", model_dir=str(model_dir))
    summary = run_study(make_cohort(4), tmp_path / "study", config=config)
    assert summary.n_ok + summary.n_failed == 4
    scans, n_rows = _rows(tmp_path / "study")
    assert len(scans) == 4 and n_rows == summary.n_ok * len(NAMES)
