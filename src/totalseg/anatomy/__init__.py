"""Anatomy registry: structure names, groups, class maps (v1 104 / v2 117), part splits and
SNOMED CT codes."""

from totalseg.anatomy.codes import GENERIC_CODES, Code, StructureCodes, structure_codes
from totalseg.anatomy.registry import (
    SUBSETS,
    ClassMapVersion,
    Structure,
    class_map,
    class_map_names,
    combination,
    combination_names,
    get_structure,
    group_counts,
    part_maps,
    relabel,
    resolve_names,
    structures,
    subset,
)

__all__ = [
    "GENERIC_CODES",
    "SUBSETS",
    "ClassMapVersion",
    "Code",
    "Structure",
    "StructureCodes",
    "class_map",
    "class_map_names",
    "combination",
    "combination_names",
    "get_structure",
    "group_counts",
    "part_maps",
    "relabel",
    "resolve_names",
    "structure_codes",
    "structures",
    "subset",
]
