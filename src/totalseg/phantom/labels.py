"""From the phantom's internal labels (124 structures + tissues) to the v1 / v2 class maps."""

from __future__ import annotations

from functools import cache

import numpy as np

from totalseg.anatomy import class_map
from totalseg.anatomy.registry import ClassMapVersion
from totalseg.phantom.tissues import LABEL_NAMES, N_STRUCTURES

__all__ = ["MERGES", "structure_names", "to_class_map", "to_structure_labels"]

#: Structures that a class map does not have but folds into one it has.
MERGES: dict[str, dict[str, str]] = {
    "v1": {
        "atrial_appendage_left": "heart_atrium_left",
        "kidney_cyst_left": "kidney_left",
        "kidney_cyst_right": "kidney_right",
        "vertebrae_S1": "sacrum",
    },
    "v2": {
        "heart_myocardium": "heart",
        "heart_atrium_left": "heart",
        "heart_ventricle_left": "heart",
        "heart_atrium_right": "heart",
        "heart_ventricle_right": "heart",
    },
}


def structure_names() -> tuple[str, ...]:
    """The 124 structure names of the phantom (internal ids 1..124)."""
    return LABEL_NAMES[:N_STRUCTURES]


@cache
def _lut(version: ClassMapVersion | None) -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    if version is None:
        lut[1 : N_STRUCTURES + 1] = np.arange(1, N_STRUCTURES + 1)
        return lut
    ids = {name: i for i, name in class_map(version).items()}
    merges = MERGES[version]
    for internal, name in enumerate(structure_names(), start=1):
        target = merges.get(name, name)
        lut[internal] = ids.get(target, 0)
    lut.flags.writeable = False
    return lut


def to_structure_labels(internal: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Internal labels with the non-class tissues set to 0; ids 1..124 in registry order."""
    return _lut(None)[internal], dict(enumerate(structure_names(), start=1))


def to_class_map(
    internal: np.ndarray, version: ClassMapVersion
) -> tuple[np.ndarray, dict[int, str]]:
    """Internal labels -> one class map's ids (v1: 104 classes, v2: 117), relabelled by name."""
    cmap = class_map(version)
    return _lut(version)[internal], dict(cmap)
