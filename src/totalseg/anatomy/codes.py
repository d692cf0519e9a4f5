"""SNOMED CT codes of the structures, read from package data (`data/snomed.csv`).

DICOM-SEG segments and RTSTRUCT observations describe what they contain with coded concepts:
a Segmented Property Category (CID 7150), a Segmented Property Type (CID 7192, here a SNOMED CT
body structure) and, for paired structures, a type modifier (SCT 7771000 Left / 24028007 Right).
The table holds one row for each of the 124 structures of the v1 and v2 class maps; the codes
were looked up in pydicom's SNOMED CT concept table (`pydicom.sr.codedict`) where it has them
(the table's test checks every such meaning) and taken from SNOMED CT itself for the few it
lacks (individual ribs, S1, gluteal muscles, iliopsoas, autochthon, myocardium, portal and
splenic vein). A structure without a row (e.g. a task's own classes such as lung_vessels) gets
the documented generic `GENERIC_CODES`: category and type SCT 91723000 "Anatomical Structure".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["GENERIC_CODES", "Code", "StructureCodes", "structure_codes"]


@dataclass(frozen=True)
class Code:
    """One coded concept (value, meaning, coding scheme designator)."""

    value: str
    meaning: str
    scheme: str = "SCT"


@dataclass(frozen=True)
class StructureCodes:
    """The codes that describe one structure; `generic` when the structure has no row."""

    category: Code
    type: Code
    modifier: Code | None = None
    generic: bool = False

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (`totalseg info classes --json`)."""
        out: dict[str, object] = {
            "category": vars(self.category).copy(),
            "type": vars(self.type).copy(),
            "modifier": None if self.modifier is None else vars(self.modifier).copy(),
        }
        if self.generic:
            out["generic"] = True
        return out

    def short(self) -> str:
        """'SCT 64033007 Kidney (Left)': the type code with its modifier, for tables."""
        side = f" ({self.modifier.meaning})" if self.modifier else ""
        return f"{self.type.scheme} {self.type.value} {self.type.meaning}{side}"


_ANATOMICAL_STRUCTURE = Code("91723000", "Anatomical Structure")
#: the codes of a structure that the table does not list
GENERIC_CODES = StructureCodes(_ANATOMICAL_STRUCTURE, _ANATOMICAL_STRUCTURE, None, generic=True)


@cache
def _table() -> dict[str, StructureCodes]:
    path = resources.files("totalseg.anatomy").joinpath("data/snomed.csv")
    rows = csv.DictReader(path.read_text(encoding="utf-8").splitlines())
    return {
        r["name"]: StructureCodes(
            category=Code(r["category_code"], r["category_meaning"]),
            type=Code(r["type_code"], r["type_meaning"]),
            modifier=_modifier(r),
        )
        for r in rows
    }


def _modifier(row: dict[str, str]) -> Code | None:
    return Code(row["modifier_code"], row["modifier_meaning"]) if row["modifier_code"] else None


def structure_codes(name: str) -> StructureCodes:
    """The SNOMED CT codes of a structure; `GENERIC_CODES` for names the table lacks."""
    return _table().get(name, GENERIC_CODES)
