"""A `study run` folder as viewer cases: the case table and each case's stored measures.

The case table has one row per scan of `STUDY/study.duckdb`: id, subject, age, sex, status
(ok/failed) and failure reason, and the structures the analysis excludes (the rule of `study
analyze`, `totalseg.study.exclusion`): implausible ones, complete but below their lower volume
bound (a failed segmentation), and those cut by the field of view (touching the border; a cut
structure is listed as cut even when it is also small). A case is *flagged* when its scan failed
or it has an implausible structure.

A case's structure measures are read from the store, never recomputed. Its labels are shown
only when the study measured existing segmentations (`--from-segmentations`): a model run keeps
no masks, and the manifest's `seg_path` of such a study is not what was measured.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from totalseg.viewer.cases import CaseSpec

__all__ = ["StudyIndex"]

log = logging.getLogger(__name__)

_SCANS = (
    "SELECT scan_id, subject_id, path, seg_path, age, sex, status, reason, n_present "
    "FROM scans ORDER BY scan_id"
)
_FLAG_ROWS = "SELECT scan_id, structure, status, volume_ml FROM structure_stats"


def _clean(value: Any) -> Any:
    """None for NULL, NaN and pandas' NA; numpy scalars as Python numbers."""
    import pandas as pd

    if value is None or pd.isna(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass(frozen=True)
class StudyIndex:
    """The scans of a study folder, their flags, and where their files are."""

    folder: Path
    rows: tuple[dict[str, Any], ...]
    specs: dict[str, CaseSpec]
    flags: dict[str, dict[str, str]]  # scan_id -> {structure: reason}
    measured_segmentations: bool

    @classmethod
    def open(
        cls, folder: str | os.PathLike[str], *, min_volumes: str | os.PathLike[str] | None = None
    ) -> StudyIndex:
        """Index `folder` (a `study run` output); InputError if it is not one."""
        import numpy as np

        from totalseg.study.exclusion import exclusion_reasons, load_min_volumes
        from totalseg.study.store import ResultStore

        root = Path(folder)
        with ResultStore(root, read_only=True) as store:
            meta = dict(store.con.execute("SELECT key, value FROM study_meta").fetchall())
            scans = store.con.execute(_SCANS).df()
            stats = store.con.execute(_FLAG_ROWS).df()
        measured = meta.get("source") == "segmentations"
        reason = exclusion_reasons(stats, load_min_volumes(min_volumes))
        # A structure cut by the field of view is small for that reason: flag it as cut.
        stats["reason"] = np.where(stats["status"] == "incomplete", "incomplete", reason)
        flagged = stats.loc[stats["reason"].isin(["below_min_volume", "incomplete"])]
        flags: dict[str, dict[str, str]] = {}
        for scan_id, structure, reason in flagged[["scan_id", "structure", "reason"]].itertuples(
            index=False
        ):
            flags.setdefault(str(scan_id), {})[str(structure)] = str(reason)
        rows, specs = [], {}
        for scan in scans.to_dict("records"):
            sid = str(scan["scan_id"])
            seg = scan["seg_path"] if measured and isinstance(scan["seg_path"], str) else None
            specs[sid] = CaseSpec(sid, Path(scan["path"]), None if seg is None else Path(seg))
            rows.append(_row(scan, flags.get(sid, {}), has_labels=seg is not None))
        log.info("study %s: %d scans", root, len(rows))
        return cls(root, tuple(rows), specs, flags, measured)

    def records(self, case_id: str) -> list[dict[str, Any]]:
        """The stored statistics records of one scan (RECORD_COLUMNS), label order."""
        from totalseg.study.store import ResultStore

        with ResultStore(self.folder, read_only=True) as store:
            frame = store.con.execute(
                "SELECT * FROM structure_stats WHERE scan_id = ? ORDER BY label", [case_id]
            ).df()
        return [{k: _clean(v) for k, v in r.items()} for r in frame.to_dict("records")]


def _row(scan: dict[str, Any], flags: dict[str, str], *, has_labels: bool) -> dict[str, Any]:
    implausible = sorted(s for s, r in flags.items() if r == "below_min_volume")
    incomplete = sorted(s for s, r in flags.items() if r == "incomplete")
    status = str(scan["status"])
    return {
        "case_id": str(scan["scan_id"]),
        "subject_id": _clean(scan["subject_id"]),
        "age": _clean(scan["age"]),
        "sex": _clean(scan["sex"]),
        "status": status,
        "reason": _clean(scan["reason"]),
        "n_present": _clean(scan["n_present"]),
        "implausible": implausible,
        "incomplete": incomplete,
        "flagged": status != "ok" or bool(implausible),
        "has_labels": has_labels,
    }
