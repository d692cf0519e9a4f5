"""Result types of per-structure statistics and their flat (tidy) record form."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from totalseg.errors import UnknownStructureError

__all__ = ["RECORD_COLUMNS", "StatsStatus", "StructureStats", "StructureStatsTable"]

StatsStatus = Literal["ok", "incomplete", "absent"]
Triple = tuple[float, float, float]
IntTriple = tuple[int, int, int]

#: Columns of one flat record (one structure), in order; also the study database's columns.
RECORD_COLUMNS: tuple[str, ...] = (
    "structure",
    "label",
    "status",
    "n_voxels",
    "volume_mm3",
    "volume_ml",
    "mean_hu",
    "median_hu",
    "std_hu",
    "min_hu",
    "max_hu",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "centroid_i",
    "centroid_j",
    "centroid_k",
    "bbox_x_min_mm",
    "bbox_y_min_mm",
    "bbox_z_min_mm",
    "bbox_x_max_mm",
    "bbox_y_max_mm",
    "bbox_z_max_mm",
    "bbox_i_min",
    "bbox_j_min",
    "bbox_k_min",
    "bbox_i_max",
    "bbox_j_max",
    "bbox_k_max",
)


@dataclass(frozen=True)
class StructureStats:
    """Measures of one structure. Absent structures hold NaN (and None voxel boxes), never 0.

    Coordinates: `*_vox` are (i, j, k) voxel indices (bounding box inclusive); `*_mm` are world
    (RAS+, scanner) millimetres from the image affine; the world box is axis-aligned around the
    voxel centres of the voxel box's corners.
    """

    name: str
    label: int
    status: StatsStatus
    n_voxels: int
    volume_mm3: float
    mean_hu: float
    median_hu: float
    std_hu: float
    min_hu: float
    max_hu: float
    centroid_vox: Triple
    centroid_mm: Triple
    bbox_min_vox: IntTriple | None
    bbox_max_vox: IntTriple | None
    bbox_min_mm: Triple
    bbox_max_mm: Triple

    @property
    def volume_ml(self) -> float:
        return self.volume_mm3 / 1000.0

    def as_reference(self, *, border_rule: bool) -> StructureStats:
        """The reference tool's reported values: mean rounded to 5 decimals; 0.0 for absent
        structures and (with the border rule on) incomplete ones."""
        if self.status == "absent" or (border_rule and self.status == "incomplete"):
            return replace(self, volume_mm3=0.0, mean_hu=0.0)
        return replace(self, mean_hu=round(self.mean_hu, 5))

    def to_record(self) -> dict[str, Any]:
        """Flat record with the keys of RECORD_COLUMNS (NaN / None where absent)."""
        lo, hi = self.bbox_min_vox, self.bbox_max_vox
        none3: tuple[None, None, None] = (None, None, None)
        lo_v = lo if lo is not None else none3
        hi_v = hi if hi is not None else none3
        values = (
            self.name,
            self.label,
            self.status,
            self.n_voxels,
            self.volume_mm3,
            self.volume_ml,
            self.mean_hu,
            self.median_hu,
            self.std_hu,
            self.min_hu,
            self.max_hu,
            *self.centroid_mm,
            *self.centroid_vox,
            *self.bbox_min_mm,
            *self.bbox_max_mm,
            *lo_v,
            *hi_v,
        )
        return dict(zip(RECORD_COLUMNS, values, strict=True))

    def to_json_dict(self) -> dict[str, Any]:
        """Nested JSON form (NaN becomes None, i.e. null)."""
        box_vox = (
            None
            if self.bbox_min_vox is None or self.bbox_max_vox is None
            else {"min": list(self.bbox_min_vox), "max": list(self.bbox_max_vox)}
        )
        return {
            "label": self.label,
            "status": self.status,
            "n_voxels": self.n_voxels,
            "volume_mm3": _clean(self.volume_mm3),
            "volume_ml": _clean(self.volume_ml),
            "mean_hu": _clean(self.mean_hu),
            "median_hu": _clean(self.median_hu),
            "std_hu": _clean(self.std_hu),
            "min_hu": _clean(self.min_hu),
            "max_hu": _clean(self.max_hu),
            "centroid_mm": [_clean(v) for v in self.centroid_mm],
            "centroid_vox": [_clean(v) for v in self.centroid_vox],
            "bbox_mm": {
                "min": [_clean(v) for v in self.bbox_min_mm],
                "max": [_clean(v) for v in self.bbox_max_mm],
            },
            "bbox_vox": box_vox,
        }

    @classmethod
    def from_json_dict(cls, name: str, d: dict[str, Any]) -> StructureStats:
        box = d.get("bbox_vox")
        return cls(
            name=name,
            label=int(d["label"]),
            status=d["status"],
            n_voxels=int(d["n_voxels"]),
            volume_mm3=_num(d["volume_mm3"]),
            mean_hu=_num(d["mean_hu"]),
            median_hu=_num(d["median_hu"]),
            std_hu=_num(d["std_hu"]),
            min_hu=_num(d["min_hu"]),
            max_hu=_num(d["max_hu"]),
            centroid_vox=_num3(d["centroid_vox"]),
            centroid_mm=_num3(d["centroid_mm"]),
            bbox_min_vox=None if box is None else _int3(box["min"]),
            bbox_max_vox=None if box is None else _int3(box["max"]),
            bbox_min_mm=_num3(d["bbox_mm"]["min"]),
            bbox_max_mm=_num3(d["bbox_mm"]["max"]),
        )


@dataclass(frozen=True)
class StructureStatsTable:
    """Statistics of every reported structure of one scan, with the grid they were measured on."""

    rows: tuple[StructureStats, ...]
    shape: IntTriple
    spacing_mm: Triple
    voxel_volume_mm3: float
    border_voxels: int
    reference_compatible: bool = False

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[StructureStats]:
        return iter(self.rows)

    def __getitem__(self, name: str) -> StructureStats:
        for row in self.rows:
            if row.name == name:
                return row
        raise UnknownStructureError(
            f"Expected one of the {len(self.rows)} structures of this table, got {name!r}."
        )

    @property
    def names(self) -> list[str]:
        return [row.name for row in self.rows]

    def present(self) -> list[StructureStats]:
        """Rows of structures with at least one voxel (status ok or incomplete)."""
        return [row for row in self.rows if row.status != "absent"]

    def to_records(self) -> list[dict[str, Any]]:
        return [row.to_record() for row in self.rows]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": "totalseg-statistics",
            "version": 1,
            "shape": list(self.shape),
            "spacing_mm": list(self.spacing_mm),
            "voxel_volume_mm3": self.voxel_volume_mm3,
            "border_voxels": self.border_voxels,
            "reference_compatible": self.reference_compatible,
            "structures": {row.name: row.to_json_dict() for row in self.rows},
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> StructureStatsTable:
        return cls(
            rows=tuple(StructureStats.from_json_dict(n, v) for n, v in d["structures"].items()),
            shape=_int3(d["shape"]),
            spacing_mm=_num3(d["spacing_mm"]),
            voxel_volume_mm3=float(d["voxel_volume_mm3"]),
            border_voxels=int(d["border_voxels"]),
            reference_compatible=bool(d.get("reference_compatible", False)),
        )

    def to_reference_dict(self) -> dict[str, dict[str, float]]:
        """The reference tool's `statistics.json` layout: {name: {volume (mm3), intensity}}.

        Absent (and, with the border rule on, incomplete) structures get 0.0 as the reference
        tool writes them; use the native JSON to tell those apart.
        """
        out = {}
        for row in self.rows:
            ref = row.as_reference(border_rule=self.border_voxels > 0)
            out[row.name] = {"volume": ref.volume_mm3, "intensity": ref.mean_hu}
        return out


def _clean(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _num3(values: Any) -> Triple:
    a, b, c = (_num(v) for v in values)
    return (a, b, c)


def _int3(values: Any) -> IntTriple:
    a, b, c = (int(v) for v in values)
    return (a, b, c)
