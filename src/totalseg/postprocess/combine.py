"""Combining structures into one mask (`totalseg combine`, the reference's
`totalseg_combine_masks`): the union of the structures of a named combination.

A structure missing from the source is an error (as in the reference tool: a partial "ribs"
mask must not pass for a complete one), unless the source's class map cannot hold it: a v2
result has no heart chambers and a v1 result no `heart`, so `heart` combines whichever the
source has.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from totalseg.anatomy import class_map, combination
from totalseg.errors import InputError
from totalseg.image import LabelMap

__all__ = ["combine_structures", "expected_structures"]

log = logging.getLogger(__name__)


def expected_structures(name: str, available: Iterable[str]) -> tuple[str, ...]:
    """The structures of combination `name` that a source with the names `available` must
    have: all of them, except those its class map (v1 or v2) lacks."""
    wanted = combination(name)
    have = set(available)
    found = [n for n in wanted if n in have]
    if not found:
        raise InputError(
            f"Expected some of {', '.join(wanted)} for the combination {name!r}, got none of "
            f"them in the source ({len(have)} structures); is it a segmentation of this task?"
        )
    maps = [set(class_map(v).values()) for v in ("v1", "v2")]
    source_maps = [m for m in maps if set(found) <= m] or maps
    expected = tuple(
        n for n in wanted
        if n in have or any(n in m for m in source_maps) or not any(n in m for m in maps)
    )  # fmt: skip
    missing = [n for n in expected if n not in have]
    if missing:
        raise InputError(
            f"Expected every structure of the combination {name!r}, got none for "
            f"{', '.join(missing)}; check that the segmentation is complete."
        )
    return expected


def combine_structures(label_map: LabelMap, names: Sequence[str], *, label: int = 1) -> LabelMap:
    """A 0/`label` mask (uint8) of the union of `names` in `label_map`."""
    ids = [i for i, n in label_map.labels.items() if n in set(names)]
    array = np.asarray(label_map.array)
    mask = np.isin(array, np.asarray(ids, dtype=array.dtype)) if ids else np.zeros_like(array)
    log.info("combined %d structures: %d voxels", len(ids), int(mask.sum()))
    return LabelMap(mask.astype(np.uint8) * np.uint8(label), label_map.affine)
