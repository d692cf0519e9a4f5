"""A study folder as viewer cases: the case table, flags, stored measures, which labels show."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from totalseg.errors import ImageFileError, InputError
from totalseg.study.exclusion import apply_exclusions, exclusion_reasons, load_min_volumes
from totalseg.viewer import open_catalog, open_study
from totalseg.viewer.study import StudyIndex


def test_case_table_rows_and_flags(study_folder: Path) -> None:
    index = StudyIndex.open(study_folder)
    rows = {r["case_id"]: r for r in index.rows}
    assert list(rows) == ["p0", "p1", "p2"]
    assert rows["p0"]["age"] == 40 and rows["p1"]["sex"] == "M"
    assert rows["p1"]["implausible"] == ["liver"] and rows["p1"]["flagged"]
    assert rows["p0"]["implausible"] == [] and not rows["p0"]["flagged"]
    assert rows["p2"]["status"] == "failed" and rows["p2"]["flagged"]
    assert "Expected a readable NIfTI file" in rows["p2"]["reason"]
    assert all(r["has_labels"] for r in index.rows)  # measured from these segmentations
    assert index.flags["p1"]["liver"] == "below_min_volume"
    assert set(rows["p0"]["incomplete"]) == {s for s, r in index.flags["p0"].items()}


def test_a_stricter_bound_flags_more(study_folder: Path, tmp_path: Path) -> None:
    bounds = tmp_path / "bounds.csv"
    bounds.write_text("structure,min_volume_ml\nspleen,100000\n")
    rows = {r["case_id"]: r for r in StudyIndex.open(study_folder, min_volumes=bounds).rows}
    assert "spleen" in rows["p0"]["implausible"] and rows["p0"]["flagged"]


def test_a_case_uses_the_stored_measures(study_folder: Path) -> None:
    from totalseg.study.store import ResultStore

    catalog = open_study(study_folder)
    info = catalog.case("p1").info()
    with ResultStore(study_folder, read_only=True) as store:
        stored = store.con.execute(
            "SELECT volume_ml FROM structure_stats WHERE scan_id = 'p1' AND structure = 'liver'"
        ).fetchone()[0]
    liver = next(s for s in info["structures"] if s["name"] == "liver")
    assert liver["volume_ml"] == pytest.approx(stored) and liver["flag"] == "below_min_volume"
    assert info["has_labels"]
    with pytest.raises(KeyError):
        catalog.case("nope")


def test_a_model_run_shows_the_ct_without_the_manifest_masks(model_study_folder: Path) -> None:
    catalog = open_study(model_study_folder)
    assert not any(r["has_labels"] for r in catalog.rows)
    assert all(spec.seg_path is None for spec in catalog.specs.values())
    info = catalog.case("p0").info()
    assert not info["has_labels"] and [s["name"] for s in info["structures"]] == ["liver"]


def test_relative_scan_paths_say_where_to_start(
    study_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    copy = tmp_path / "study"
    shutil.copytree(study_folder, copy)
    with duckdb.connect(str(copy / "study.duckdb")) as con:
        con.execute("UPDATE scans SET path = 'elsewhere/ct.nii.gz' WHERE scan_id = 'p0'")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImageFileError, match="relative to the folder `study run` was started in"):
        open_study(copy).case("p0")


def test_not_a_study(tmp_path: Path, study_folder: Path) -> None:
    with pytest.raises(InputError, match=r"Expected a study folder .* or a DICOM series"):
        open_catalog(tmp_path)
    with pytest.raises(InputError, match="Expected no SEG argument with a study folder"):
        open_catalog(study_folder, tmp_path / "seg.nii.gz")
    with pytest.raises(InputError, match=r"Expected a report folder with report\.html"):
        open_catalog(study_folder, report=tmp_path)
    ct = tmp_path / "ct.nii.gz"
    ct.write_bytes(b"")
    with pytest.raises(InputError, match="for --report/--min-volumes"):
        open_catalog(ct, report=tmp_path)
    with pytest.raises(ImageFileError, match="does not exist"):
        open_catalog(tmp_path / "missing")


def test_a_report_folder_beside_the_study_is_found(study_folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "study"
    shutil.copytree(study_folder, copy)
    assert open_study(copy).report_dir is None
    (copy / "report").mkdir()
    (copy / "report" / "report.html").write_text("<html></html>")
    assert open_study(copy).report_dir == copy / "report"
    assert open_study(copy).listing()["report"] is True


def test_exclusion_reasons_agree_with_apply_exclusions() -> None:
    frame = pd.DataFrame(
        {
            "scan_id": ["a", "a", "a", "b", "b"],
            "structure": ["liver", "spleen", "liver", "liver", "kidney_left"],
            "status": ["ok", "absent", "incomplete", "ok", "incomplete"],
            "volume_ml": [100.0, np.nan, 1500.0, 1500.0, 5.0],
        }
    )
    bounds = load_min_volumes()
    reasons = exclusion_reasons(frame, bounds)
    assert list(reasons) == ["below_min_volume", "absent", "incomplete", "", "below_min_volume"]
    kept, _ = apply_exclusions(frame, bounds)
    assert list(kept.index) == [i for i, r in enumerate(reasons) if r == ""]
    assert list(exclusion_reasons(frame, bounds, include_incomplete=True))[2] == ""


def test_the_index_is_read_only(study_folder: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in study_folder.iterdir()}
    catalog: Any = open_study(study_folder)
    catalog.case("p0").volume_gz("ct")
    assert {p.name: p.stat().st_mtime_ns for p in study_folder.iterdir()} == before
