"""Cohort manifests: which scans a study measures, with the subject's age, sex and covariates.

A manifest is a CSV (comma, semicolon or tab separated) with the columns
- `path`: the CT, a NIfTI file or a DICOM folder/zip (relative paths are relative to the CSV);
- `scan_id` (optional; default `subject_id`, else the file name without its suffix);
- `subject_id`, `age` (years), `sex` (M/F; male/female/m/f/w are normalised), all optional;
- the segmentation column (default `seg_path`), only read by `--from-segmentations`;
- any other column: a covariate, kept as text in the study.

The public dataset layout is understood too: pass its folder, or its `meta.csv`
(`image_id;age;gender;...`); the scans are then `DIR/<image_id>/ct.nii.gz` with their masks in
`DIR/<image_id>/segmentations/`.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from totalseg.errors import ImageFileError, InputError

__all__ = ["ScanSpec", "normalize_sex", "read_manifest"]

_SEX = {"m": "M", "male": "M", "man": "M", "f": "F", "female": "F", "w": "F", "woman": "F"}
_KNOWN = ("scan_id", "path", "subject_id", "age", "sex")


@dataclass(frozen=True)
class ScanSpec:
    """One scan of a cohort: where it is and who it belongs to."""

    scan_id: str
    path: str
    subject_id: str
    age: float = math.nan
    sex: str | None = None
    seg_path: str | None = None
    covariates: Mapping[str, str] = field(default_factory=dict)


def normalize_sex(value: str | None) -> str | None:
    """'M' / 'F' for the usual spellings, None for empty, anything else unchanged."""
    if value is None or not value.strip():
        return None
    return _SEX.get(value.strip().lower(), value.strip())


def _parse_age(text: str | None, where: str) -> float:
    if text is None or not text.strip():
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise InputError(
            f"Expected a number of years in column 'age', got {text!r} ({where}); "
            "fix the manifest or leave the cell empty."
        ) from None


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImageFileError(f"Expected a cohort manifest CSV, got no file at '{path}'.") from None
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = max((";", ",", "\t"), key=first.count)
    rows = list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    if not rows:
        raise InputError(f"Expected at least one scan in the manifest '{path}', got none.")
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in rows]


def _resolve(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p))


def read_manifest(path: str | os.PathLike[str], *, seg_column: str = "seg_path") -> list[ScanSpec]:
    """Read a cohort manifest CSV, or a public-layout dataset folder / its meta.csv."""
    p = Path(path)
    if p.is_dir():
        p = p / "meta.csv"
    rows = _read_rows(p)
    columns = set(rows[0])
    if "path" not in columns and "image_id" in columns:
        return _public_layout(p.parent, rows)
    if "path" not in columns:
        raise InputError(
            f"Expected a 'path' column in the manifest '{p}', got columns "
            f"{sorted(columns)}; add the CT path of each scan (NIfTI file or DICOM folder)."
        )
    specs = [_spec(p, i, row, seg_column) for i, row in enumerate(rows, start=2)]
    _check_unique(specs, p)
    return specs


def _spec(manifest: Path, line: int, row: dict[str, str], seg_column: str) -> ScanSpec:
    where = f"'{manifest.name}' line {line}"
    if not row["path"]:
        raise InputError(f"Expected a CT path in column 'path', got an empty cell ({where}).")
    ct = _resolve(manifest.parent, row["path"])
    subject = row.get("subject_id", "")
    scan_id = row.get("scan_id") or subject or _stem(ct)
    seg = row.get(seg_column) or None
    skip = {*_KNOWN, seg_column}
    return ScanSpec(
        scan_id=scan_id,
        path=ct,
        subject_id=subject or scan_id,
        age=_parse_age(row.get("age"), where),
        sex=normalize_sex(row.get("sex")),
        seg_path=_resolve(manifest.parent, seg) if seg else None,
        covariates={k: v for k, v in row.items() if k and k not in skip},
    )


def _public_layout(root: Path, rows: list[dict[str, str]]) -> list[ScanSpec]:
    specs = []
    for i, row in enumerate(rows, start=2):
        image_id = row["image_id"]
        if not image_id:
            raise InputError(f"Expected an image_id, got an empty cell ('meta.csv' line {i}).")
        folder = root / image_id
        specs.append(
            ScanSpec(
                scan_id=image_id,
                path=str(folder / "ct.nii.gz"),
                subject_id=image_id,
                age=_parse_age(row.get("age"), f"'meta.csv' line {i}"),
                sex=normalize_sex(row.get("gender") or row.get("sex")),
                seg_path=str(folder / "segmentations"),
                covariates={
                    k: v for k, v in row.items() if k and k not in ("image_id", "age", "gender")
                },
            )
        )
    _check_unique(specs, root / "meta.csv")
    return specs


def _stem(path: str) -> str:
    name = Path(path.rstrip("/")).name
    for suffix in (".nii.gz", ".nii", ".zip"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _check_unique(specs: list[ScanSpec], where: Path) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.scan_id in seen:
            raise InputError(
                f"Expected unique scan ids in '{where}', got {spec.scan_id!r} twice; "
                "add a 'scan_id' column that tells the scans apart."
            )
        seen.add(spec.scan_id)
