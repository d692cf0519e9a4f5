"""Statistics files: native JSON / CSV (written atomically) and the reference tool's JSON.

Native JSON holds the grid and every measure, with null for NaN; CSV holds one flat record per
structure (RECORD_COLUMNS, empty cells for NaN). `statistics.json` of the reference tool is
{name: {volume (mm3), intensity (mean), [n_voxels, intensity_std/min/max, centroid_vox,
bbox_vox]}}, where 0.0 means "absent or excluded at the border".
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from totalseg.errors import ImageFileError, InputError
from totalseg.stats.table import RECORD_COLUMNS, StructureStatsTable

__all__ = [
    "ReferenceStructureStats",
    "read_reference_statistics",
    "read_statistics",
    "write_statistics",
]

StatsFormat = Literal["json", "csv", "reference"]


def write_statistics(
    table: StructureStatsTable, path: str | os.PathLike[str], *, format: StatsFormat | None = None
) -> Path:
    """Write a statistics table atomically (temp file + rename); returns the path.

    The format follows the suffix (.json or .csv) unless given; "reference" writes the
    reference tool's `statistics.json` layout.
    """
    out = Path(path)
    fmt = format or _format_from_suffix(out)
    if fmt == "json":
        text = json.dumps(table.to_json_dict(), indent=2, allow_nan=False) + "\n"
    elif fmt == "reference":
        text = json.dumps(table.to_reference_dict(), indent=2, allow_nan=False) + "\n"
    elif fmt == "csv":
        text = table_to_csv(table)
    else:
        raise InputError(f"Expected format 'json', 'csv' or 'reference', got {fmt!r}.")
    atomic_write_text(out, text)
    return out


def table_to_csv(table: StructureStatsTable) -> str:
    """CSV text: a header of RECORD_COLUMNS and one row per structure (empty cells for NaN)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RECORD_COLUMNS)
    for record in table.to_records():
        writer.writerow([_cell(record[c]) for c in RECORD_COLUMNS])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _format_from_suffix(path: Path) -> StatsFormat:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == ".csv":
        return "csv"
    raise InputError(
        f"Expected a statistics file name ending in .json or .csv, got {path.name!r}; "
        "rename it or pass format=."
    )


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see atomic_write_bytes)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync it, then rename it over `path`
    (`io.outputs.write_bytes_atomic`: usual file mode, OS errors as one-line OutputErrors)."""
    from totalseg.io.outputs import write_bytes_atomic

    write_bytes_atomic(path, data)


def _load_json(path: Path) -> Any:
    try:
        with path.open("r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ImageFileError(
            f"Expected a statistics JSON file, got no file at '{path}'; check the path."
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"Expected valid JSON in '{path}', got a parse error ({exc}); the file is damaged."
        ) from None


def read_statistics(path: str | os.PathLike[str]) -> StructureStatsTable:
    """Read a native statistics JSON written by `write_statistics`."""
    p = Path(path)
    data = _load_json(p)
    if not isinstance(data, dict) or data.get("format") != "totalseg-statistics":
        raise InputError(
            f"Expected a totalseg statistics JSON (format 'totalseg-statistics'), got another "
            f"layout in '{p}'; use read_reference_statistics for the reference tool's file."
        )
    return StructureStatsTable.from_json_dict(data)


@dataclass(frozen=True)
class ReferenceStructureStats:
    """One entry of the reference tool's `statistics.json` (0.0 = absent or excluded)."""

    name: str
    volume_mm3: float
    mean_hu: float
    n_voxels: int | None = None
    std_hu: float | None = None
    min_hu: float | None = None
    max_hu: float | None = None
    centroid_vox: tuple[float, ...] | None = None
    bbox_vox: tuple[tuple[int, int], ...] | None = None

    @property
    def volume_ml(self) -> float:
        return self.volume_mm3 / 1000.0

    @property
    def reported(self) -> bool:
        """False where the tool wrote 0 (structure absent or cut at the border)."""
        return self.volume_mm3 > 0


def read_reference_statistics(path: str | os.PathLike[str]) -> dict[str, ReferenceStructureStats]:
    """Read the reference tool's `statistics.json` ({name: {volume, intensity, ...}})."""
    p = Path(path)
    data = _load_json(p)
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and "volume" in v and "intensity" in v for v in data.values()
    ):
        raise InputError(
            f"Expected the reference tool's statistics.json ({{name: {{volume, intensity}}}}), "
            f"got another layout in '{p}'."
        )
    out = {}
    for name, v in data.items():
        bbox = v.get("bbox_vox")
        centroid = v.get("centroid_vox")
        out[name] = ReferenceStructureStats(
            name=name,
            volume_mm3=float(v["volume"]),
            mean_hu=float(v["intensity"]),
            n_voxels=None if v.get("n_voxels") is None else int(v["n_voxels"]),
            std_hu=_opt(v.get("intensity_std")),
            min_hu=_opt(v.get("intensity_min")),
            max_hu=_opt(v.get("intensity_max")),
            centroid_vox=None if centroid is None else tuple(float(c) for c in centroid),
            bbox_vox=None if bbox is None else tuple((int(a), int(b)) for a, b in bbox),
        )
    return out


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)
