"""Anatomy registry: structure names, groups, class maps (v1 104 / v2 117) and part splits."""

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
    "SUBSETS",
    "ClassMapVersion",
    "Structure",
    "class_map",
    "class_map_names",
    "combination",
    "combination_names",
    "get_structure",
    "group_counts",
    "part_maps",
    "relabel",
    "resolve_names",
    "structures",
    "subset",
]
