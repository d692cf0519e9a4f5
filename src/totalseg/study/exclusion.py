"""Exclusion of implausible measurements before analysis.

A structure of a scan is excluded when it is
- `absent` (no voxel; NaN values),
- `incomplete` (touches the image border, so its volume is cut), unless included on request,
- below its lower volume bound: an anatomically implausible volume for a complete adult organ,
  i.e. a failed segmentation (the paper's criterion).

The bounds ship as package data, `totalseg/study/data/min_volume_ml.csv` (columns structure,
min_volume_ml, rationale), one row per structure of either class map; each bound sits well
below the normal adult range given in its rationale so that small but real organs are kept.
Override some or all of them with a CSV of the same columns (rationale optional); a bound of 0
or an empty cell turns the check off for that structure. Structures without a bound are only
required to be present.
"""

from __future__ import annotations

import csv
import math
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from totalseg.errors import ImageFileError, InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "apply_exclusions",
    "exclusion_reasons",
    "load_min_volumes",
    "shipped_min_volumes_path",
]


def shipped_min_volumes_path() -> Path:
    """Path of the shipped bounds table (package data)."""
    return Path(str(resources.files("totalseg.study").joinpath("data/min_volume_ml.csv")))


def _read_bounds(text: str, where: str) -> dict[str, float]:
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"structure", "min_volume_ml"} <= set(rows[0]):
        raise InputError(
            f"Expected a CSV with columns structure,min_volume_ml[,rationale] in {where}, got "
            f"columns {sorted(rows[0]) if rows else []}."
        )
    out = {}
    for i, row in enumerate(rows, start=2):
        cell = (row["min_volume_ml"] or "").strip()
        try:
            value = float(cell) if cell else 0.0
        except ValueError:
            raise InputError(
                f"Expected a number of ml in column min_volume_ml, got {cell!r} ({where} line {i})."
            ) from None
        if value < 0 or math.isnan(value):
            raise InputError(f"Expected min_volume_ml >= 0, got {cell!r} ({where} line {i}).")
        out[row["structure"].strip()] = value
    return out


def load_min_volumes(override: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """{structure: lower volume bound in ml}: the shipped table, updated by `override`."""
    bounds = _read_bounds(shipped_min_volumes_path().read_text(encoding="utf-8"), "shipped table")
    if override is not None:
        p = Path(override)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ImageFileError(f"Expected a min-volume CSV, got no file at '{p}'.") from None
        bounds.update(_read_bounds(text, f"'{p}'"))
    return {k: v for k, v in bounds.items() if v > 0}


def exclusion_reasons(
    frame: pd.DataFrame,
    min_volumes_ml: dict[str, float],
    *,
    include_incomplete: bool = False,
) -> np.ndarray:
    """Why each row of a scan x structure frame is excluded: "absent", "below_min_volume",
    "incomplete" (unless included), or "" where it is kept. Needs columns structure, status,
    volume_ml."""
    import numpy as np

    bound = frame["structure"].map(min_volumes_ml).astype(float)
    absent = (frame["status"] == "absent") | frame["volume_ml"].isna()
    incomplete = (frame["status"] == "incomplete") & ~absent
    below = ~absent & (frame["volume_ml"] < bound.fillna(0.0))
    return np.select(
        [absent, below, incomplete & (not include_incomplete)],
        ["absent", "below_min_volume", "incomplete"],
        default="",
    )


def apply_exclusions(
    frame: pd.DataFrame,
    min_volumes_ml: dict[str, float],
    *,
    include_incomplete: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept rows, per-structure exclusion counts) of a tidy scan x structure frame.

    `frame` needs columns scan_id, structure, status, volume_ml. The counts table has
    structure, n_scans, n_absent, n_incomplete, n_below_min_volume, n_kept, min_volume_ml.
    """
    import pandas as pd

    reason = exclusion_reasons(frame, min_volumes_ml, include_incomplete=include_incomplete)
    excluded = reason != ""
    marks = pd.DataFrame(
        {
            "structure": frame["structure"],
            "absent": reason == "absent",
            "incomplete": reason == "incomplete",
            "below": reason == "below_min_volume",
            "kept": ~excluded,
        }
    )
    counts = marks.groupby("structure", sort=True).agg(
        n_scans=("kept", "size"),
        n_absent=("absent", "sum"),
        n_incomplete=("incomplete", "sum"),
        n_below_min_volume=("below", "sum"),
        n_kept=("kept", "sum"),
    )
    counts["min_volume_ml"] = counts.index.map(min_volumes_ml).astype(float)
    return frame.loc[~excluded].copy(), counts.reset_index()
