"""The structure registry, read from package data (`data/structures.csv`).

v1 is the paper's 104-class map (five 1.5 mm parts, Tasks 251-255); v2 is the reference tool's
117-class map (parts 291-295). Structures are matched across versions by name. The reference
tool's other tasks (total_mr, lung_vessels, body, ...) have their own class maps, read from
`data/class_maps.json` (`class_map("lung_vessels")`); their names need not be in the registry.
"""

from __future__ import annotations

import csv
import difflib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import numpy as np

from totalseg.errors import UnknownStructureError

ClassMapVersion = Literal["v1", "v2"]
Group = Literal["organ", "bone", "muscle", "vessel"]

#: Named structure subsets. `btcv13`: the 13 structures of the BTCV abdomen challenge as the paper
#: compares them (adrenal glands as left + right).
SUBSETS: Mapping[str, tuple[str, ...]] = {
    "btcv13": (
        "spleen",
        "kidney_right",
        "kidney_left",
        "gallbladder",
        "esophagus",
        "liver",
        "stomach",
        "aorta",
        "inferior_vena_cava",
        "portal_vein_and_splenic_vein",
        "pancreas",
        "adrenal_gland_right",
        "adrenal_gland_left",
    ),
}


@dataclass(frozen=True)
class Structure:
    """One anatomical structure and its place in each class map (None where absent)."""

    name: str
    group: Group
    v1_id: int | None
    v1_dataset: int | None
    v1_local: int | None
    v2_id: int | None
    v2_dataset: int | None
    v2_local: int | None

    def id_in(self, version: str) -> int | None:
        return self.v1_id if version == "v1" else self.v2_id


def _opt_int(text: str) -> int | None:
    return int(text) if text.strip() else None


@cache
def structures() -> tuple[Structure, ...]:
    """Every structure of either class map (the union, 124 names), in v2 id order then v1."""
    path = resources.files("totalseg.anatomy").joinpath("data/structures.csv")
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    return tuple(
        Structure(
            name=r["name"],
            group=r["group"],  # type: ignore[arg-type]
            v1_id=_opt_int(r["v1_id"]),
            v1_dataset=_opt_int(r["v1_dataset"]),
            v1_local=_opt_int(r["v1_local"]),
            v2_id=_opt_int(r["v2_id"]),
            v2_dataset=_opt_int(r["v2_dataset"]),
            v2_local=_opt_int(r["v2_local"]),
        )
        for r in rows
    )


@cache
def _by_name() -> dict[str, Structure]:
    return {s.name: s for s in structures()}


@cache
def _task_maps() -> dict[str, Any]:
    path = resources.files("totalseg.anatomy").joinpath("data/class_maps.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def class_map_names() -> tuple[str, ...]:
    """Every class map: v1, v2, then the other tasks' (e.g. total_mr, lung_vessels)."""
    return ("v1", "v2", *_task_maps())


def _check_version(version: str) -> str:
    if version not in class_map_names():
        close = difflib.get_close_matches(version, class_map_names(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownStructureError(
            f"Expected class map version 'v1' (104 classes), 'v2' (117 classes) or a task's "
            f"class map, got {version!r}.{hint}"
        )
    return version


def _int_keys(mapping: Mapping[str, Any]) -> dict[int, str]:
    return {int(k): str(v) for k, v in sorted(mapping.items(), key=lambda kv: int(kv[0]))}


@cache
def class_map(version: str = "v2") -> dict[int, str]:
    """Global id -> name for one class map (v1, v2 or a task's), ids ascending."""
    version = _check_version(version)
    if version not in ("v1", "v2"):
        return _int_keys(_task_maps()[version]["classes"])
    pairs = [(s.id_in(version), s.name) for s in structures() if s.id_in(version) is not None]
    return {int(i): n for i, n in sorted(pairs)}  # type: ignore[arg-type]


@cache
def part_maps(version: str = "v2") -> dict[int, dict[int, str]]:
    """Dataset (task) id of each part of a multi-model class map -> {local label -> name}
    (empty for a class map of one model)."""
    version = _check_version(version)
    if version not in ("v1", "v2"):
        parts = _task_maps()[version].get("parts", {})
        return {int(ds): _int_keys(m) for ds, m in sorted(parts.items(), key=lambda kv: int(kv[0]))}
    out: dict[int, dict[int, str]] = {}
    for s in structures():
        ds, loc = (s.v1_dataset, s.v1_local) if version == "v1" else (s.v2_dataset, s.v2_local)
        if ds is not None and loc is not None:
            out.setdefault(ds, {})[loc] = s.name
    return {ds: dict(sorted(m.items())) for ds, m in sorted(out.items())}


def group_counts(version: ClassMapVersion = "v1") -> dict[str, int]:
    """Structures per group in a class map (v1: 27 organs, 59 bones, 10 muscles, 8 vessels)."""
    names = class_map(version).values()
    counts = Counter(_by_name()[n].group for n in names)
    return {g: counts.get(g, 0) for g in ("organ", "bone", "muscle", "vessel")}


def get_structure(name: str) -> Structure:
    """Look a structure up by its canonical name; unknown names get a "did you mean"."""
    found = _by_name().get(name)
    if found is not None:
        return found
    candidates = list(_by_name()) + list(SUBSETS)
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownStructureError(
        f"Unknown structure {name!r}.{hint} List the names with `totalseg info classes`."
    )


def subset(name: str) -> tuple[str, ...]:
    """Structure names of a named subset such as 'btcv13'."""
    if name not in SUBSETS:
        close = difflib.get_close_matches(name, list(SUBSETS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownStructureError(f"Unknown subset {name!r}; known: {', '.join(SUBSETS)}.{hint}")
    return SUBSETS[name]


def resolve_names(names: Iterable[str], *, version: str | None = None) -> list[str]:
    """Validate structure names (subset names expand), keep order, drop repeats.

    With `version`, names that exist but are not in that class map are an error too; for a
    task's own class map (not v1/v2) the names are checked against that map alone.
    """
    out: list[str] = []
    if version is not None and _check_version(version) not in ("v1", "v2"):
        known = list(class_map(version).values())
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise UnknownStructureError(
                    f"Unknown structure {name!r} for the {version} class map "
                    f"({', '.join(known[:6])}{', ...' if len(known) > 6 else ''}).{hint}"
                )
            if name not in out:
                out.append(name)
        return out
    for name in names:
        expanded = SUBSETS.get(name, (name,))
        for n in expanded:
            s = get_structure(n)
            if version is not None and s.id_in(version) is None:
                raise UnknownStructureError(
                    f"Structure {n!r} is not in the {version} class map "
                    f"({len(class_map(version))} classes); choose another version or structure."
                )
            if n not in out:
                out.append(n)
    return out


@cache
def _combinations() -> dict[str, tuple[str, ...]]:
    path = resources.files("totalseg.anatomy").joinpath("data/combinations.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {k: tuple(v) for k, v in doc.items() if not k.startswith("_")}


def combination_names() -> tuple[str, ...]:
    """The combinations of `totalseg combine` (the reference's `totalseg_combine_masks -m`)."""
    return tuple(_combinations())


def combination(name: str) -> tuple[str, ...]:
    """The structures whose union a combination is (`combination("lung")`: five lobes)."""
    found = _combinations().get(name)
    if found is None:
        close = difflib.get_close_matches(name, list(_combinations()), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownStructureError(
            f"Unknown combination {name!r}; known: {', '.join(_combinations())}.{hint}"
        )
    return found


def relabel(labels: np.ndarray, source: Mapping[int, str], target: Mapping[int, str]) -> np.ndarray:
    """Map label values from one id space to another by structure name.

    Labels whose name is absent from `target` become 0 (e.g. heart chambers v1 -> v2).
    """
    by_name = {n: i for i, n in target.items()}
    max_id = max([0, *source.keys()])
    if labels.size and int(labels.max()) > max_id:
        max_id = int(labels.max())
    lut = np.zeros(max_id + 1, dtype=np.min_scalar_type(max([0, *target.keys()])))
    for i, n in source.items():
        lut[i] = by_name.get(n, 0)
    return lut[labels]
