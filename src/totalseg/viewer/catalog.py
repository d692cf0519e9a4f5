"""What one `totalseg view` serves: a single case, or every scan of a study folder.

`open_catalog(path, seg)` decides: a folder holding `study.duckdb` is a study (with its HTML
report folder when there is one), anything else is a CT (NIfTI file, DICOM folder or zip) with
an optional segmentation. A single case is read and measured at once, so bad inputs fail before
the server starts; the scans of a study are read when the browser opens them, one at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from totalseg.errors import ImageFileError, InputError
from totalseg.viewer.cases import PREVIEW_MAX_VOXELS, CaseCache, CaseSpec, LoadedCase, load_case

__all__ = ["REPORT_NAME", "Catalog", "open_case", "open_catalog", "open_study"]

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class Catalog:
    """The cases of one viewer: table rows (in display order), where each case is, a cache
    holding the open one, and the study's report folder (if any)."""

    mode: Literal["case", "study"]
    title: str
    rows: tuple[dict[str, Any], ...]
    specs: dict[str, CaseSpec]
    cache: CaseCache
    report_dir: Path | None = None

    def case(self, case_id: str) -> LoadedCase:
        """The loaded case (KeyError for an unknown id)."""
        if case_id not in self.specs:
            raise KeyError(case_id)
        return self.cache.get(case_id)

    def listing(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "title": self.title,
            "report": self.report_dir is not None,
            "cases": list(self.rows),
        }


def _case_id(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def open_case(
    ct: str | os.PathLike[str],
    seg: str | os.PathLike[str] | None = None,
    *,
    preview_max_voxels: int = PREVIEW_MAX_VOXELS,
) -> Catalog:
    """A catalog of one case, read and measured now (errors surface here)."""
    spec = CaseSpec(_case_id(Path(ct)), Path(ct), None if seg is None else Path(seg))
    loaded = load_case(spec, preview_max_voxels=preview_max_voxels)
    cache = CaseCache(lambda _case_id: loaded)
    row = {
        "case_id": spec.case_id,
        "status": "ok",
        "flagged": False,
        "has_labels": loaded.label_map is not None,
        "n_present": sum(1 for s in loaded.structures if s["status"] != "absent"),
    }
    title = Path(ct).name if seg is None else f"{Path(ct).name} + {Path(seg).name}"
    return Catalog("case", title, (row,), {spec.case_id: spec}, cache)


def _report_dir(folder: Path, report: str | os.PathLike[str] | None) -> Path | None:
    if report is None:
        default = folder / "report"
        return default if (default / REPORT_NAME).is_file() else None
    p = Path(report)
    if not (p / REPORT_NAME).is_file():
        raise InputError(
            f"Expected a report folder with {REPORT_NAME} (from `totalseg study analyze`), got "
            f"'{p}'; pass the folder given to `study analyze --out`."
        )
    return p


def open_study(
    folder: str | os.PathLike[str],
    *,
    report: str | os.PathLike[str] | None = None,
    min_volumes: str | os.PathLike[str] | None = None,
) -> Catalog:
    """A catalog of every scan of a study folder; `report`: its `study analyze` folder
    (default: `folder/report` when it holds a report)."""
    from totalseg.viewer.study import StudyIndex

    root = Path(folder)
    index = StudyIndex.open(root, min_volumes=min_volumes)
    report_dir = _report_dir(root, report)

    def load(case_id: str) -> LoadedCase:
        spec = index.specs[case_id]
        if not spec.ct_path.is_absolute() and not spec.ct_path.exists():
            raise ImageFileError(
                f"Expected the CT of scan {case_id!r} at '{spec.ct_path}', relative to the folder "
                "`study run` was started in, got nothing there; start `totalseg view` from there."
            )
        return load_case(spec, records=index.records(case_id), flags=index.flags.get(case_id))

    title = f"{root.resolve().name} ({len(index.rows)} scans)"
    return Catalog("study", title, index.rows, index.specs, CaseCache(load), report_dir)


def open_catalog(
    path: str | os.PathLike[str],
    seg: str | os.PathLike[str] | None = None,
    *,
    report: str | os.PathLike[str] | None = None,
    min_volumes: str | os.PathLike[str] | None = None,
) -> Catalog:
    """A study folder (with study.duckdb) or a CT with an optional segmentation."""
    from totalseg.study.store import DB_NAME

    p = Path(path)
    if not p.exists():
        raise ImageFileError(
            f"Expected a CT (NIfTI file, DICOM folder or zip) or a study folder, got a path that "
            f"does not exist: '{p}'."
        )
    is_study = p.is_dir() and (p / DB_NAME).is_file()
    if not is_study and (report is not None or min_volumes is not None):
        raise InputError(
            f"Expected a study folder (with {DB_NAME}) for --report/--min-volumes, got '{p}'."
        )
    if is_study:
        if seg is not None:
            raise InputError(
                f"Expected no SEG argument with a study folder, got '{seg}'; a study's cases "
                "come with their own segmentations."
            )
        return open_study(p, report=report, min_volumes=min_volumes)
    if p.is_dir() and seg is None:
        try:
            return open_case(p)
        except (ImageFileError, InputError) as exc:
            raise InputError(
                f"Expected a study folder (with {DB_NAME} from `totalseg study run`) or a DICOM "
                f"series in '{p}', got neither ({exc})"
            ) from exc
    return open_case(p, seg)
