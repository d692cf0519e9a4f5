"""Percentile and z-score of a new scan's measurements against a reference table.

The reference (`totalseg.study.reference`, schema version 1) gives, per structure, measure,
sex and whole year of age, the location and scale of the measure on its transformed scale;
between whole years both are interpolated linearly. For a value y at age a:
z = (T(y) - location(a)) / scale(a), T = log for volume, identity for HU; percentile =
100 Phi(z); `outside_band` when the value lies below the 2.5 % or above the 97.5 % curve
(|z| > 1.96). An age outside the reference's support (the ages of that sex's measurements)
is scored at the nearest supported age and says so in `note`; a sex or structure the reference
lacks gets NaN and a note.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from totalseg.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReferenceTable", "Score", "reference_metadata"]

_Z975 = 1.959963984540054


@dataclass(frozen=True)
class Score:
    """One measurement against the reference."""

    structure: str
    measure: str
    value: float
    percentile: float
    z: float
    outside_band: bool
    note: str = ""


class ReferenceTable:
    """A reference folder (or its reference.parquet / .csv), indexed for lookups."""

    def __init__(self, table: pd.DataFrame, *, where: str) -> None:
        from totalseg.study.reference import SCHEMA_VERSION

        versions = set(table["schema_version"].unique()) if "schema_version" in table else set()
        if versions != {SCHEMA_VERSION}:
            raise InputError(
                f"Expected a reference table of schema version {SCHEMA_VERSION}, got versions "
                f"{sorted(versions)} in '{where}'; rebuild it with `totalseg study reference`."
            )
        self.where = where
        self._curves = {
            key: g.sort_values("age") for key, g in table.groupby(["structure", "measure", "sex"])
        }
        self.sexes = frozenset(str(s) for s in table["sex"].unique())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceTable:
        import pandas as pd

        p = Path(path)
        file = p / "reference.parquet" if p.is_dir() else p
        if p.is_dir() and not file.is_file():
            file = p / "reference.csv"
        if not file.is_file() or file.suffix.lower() not in (".parquet", ".csv"):
            raise InputError(
                f"Expected a reference folder (reference.parquet) or table from `totalseg "
                f"study reference`, got '{p}'."
            )
        table = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
        return cls(table, where=str(file))

    def score(self, structure: str, measure: str, value: float, *, age: float, sex: str) -> Score:
        """Percentile and z of one value (NaN with a note where the reference cannot say)."""

        def empty(note: str) -> Score:
            return Score(structure, measure, value, math.nan, math.nan, False, note)

        if sex not in self.sexes:
            return empty(f"the reference has no sex {sex!r} (has {sorted(self.sexes)})")
        curve = self._curves.get((structure, measure, sex))
        if curve is None:
            return empty("structure not in the reference")
        if value != value or (measure == "volume_ml" and value <= 0):
            return empty("no value")
        lo, hi = float(curve["age_min"].iloc[0]), float(curve["age_max"].iloc[0])
        note = ""
        if not lo <= age <= hi:
            note = f"age {age:g} outside the reference's support ({lo:.0f}-{hi:.0f} years)"
        ages = curve["age"].to_numpy(dtype=float)
        loc = float(np.interp(age, ages, curve["location"].to_numpy(dtype=float)))
        scale = float(np.interp(age, ages, curve["scale"].to_numpy(dtype=float)))
        y = math.log(value) if curve["transform"].iloc[0] == "log" else float(value)
        z = (y - loc) / scale
        percentile = 50.0 * math.erfc(-z / math.sqrt(2.0))
        return Score(structure, measure, float(value), percentile, z, abs(z) > _Z975, note)

    def support_note(self, *, age: float, sex: str) -> str:
        """Empty, or why this age or sex lies outside the reference's support."""
        if sex not in self.sexes:
            return f"sex {sex!r} is not in the reference (it has {sorted(self.sexes)})"
        spans = [
            (float(g["age_min"].iloc[0]), float(g["age_max"].iloc[0]))
            for (_s, _m, s), g in self._curves.items()
            if s == sex
        ]
        lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
        if not lo <= age <= hi:
            return (
                f"age {age:g} lies outside the reference's support for sex {sex} "
                f"({lo:.0f}-{hi:.0f} years)"
            )
        return ""


def reference_metadata(path: str | os.PathLike[str]) -> dict[str, object]:
    """The reference.json of a reference folder (empty when absent)."""
    p = Path(path)
    doc = (p if p.is_dir() else p.parent) / "reference.json"
    return json.loads(doc.read_text(encoding="utf-8")) if doc.is_file() else {}
