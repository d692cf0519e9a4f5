"""Merging the label maps of part models into one global label map (the reference tool's way).

Each part's local labels are mapped to global ids by structure name; parts are applied in order
and a later part overwrites earlier ones wherever it predicts a (mapped) nonzero label. There is
no probability fusion, exactly like TotalSegmentator's `seg_combined[seg == local] = global`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from totalseg.errors import ConfigError, InputError

__all__ = ["empty_merge", "keep_labels", "local_to_global_lut", "merge_into", "merge_parts"]


def local_to_global_lut(
    part_labels: Mapping[int, str], global_labels: Mapping[int, str], *, n_local: int | None = None
) -> np.ndarray:
    """A lookup table local label -> global id (0 for background and unmapped local labels)."""
    by_name = {name: gid for gid, name in global_labels.items()}
    missing = [name for name in part_labels.values() if name not in by_name]
    if missing:
        raise ConfigError(
            f"Expected every part label in the global class map, got unknown names {missing}; "
            "the part map and the class map do not belong together."
        )
    size = max([0, *part_labels.keys()]) + 1 if n_local is None else n_local
    top = max([0, *global_labels.keys()])
    lut = np.zeros(size, dtype=np.uint8 if top <= 255 else np.uint16)
    for local, name in part_labels.items():
        if local != 0 and local < size:
            lut[local] = by_name[name]
    return lut


def empty_merge(shape: Sequence[int], global_labels: Mapping[int, str]) -> np.ndarray:
    """An all-background global label array (uint8, or uint16 for ids above 255)."""
    top = max([0, *global_labels.keys()])
    return np.zeros(tuple(shape), dtype=np.uint8 if top <= 255 else np.uint16)


def merge_into(
    merged: np.ndarray,
    array: np.ndarray,
    part_labels: Mapping[int, str],
    global_labels: Mapping[int, str],
) -> None:
    """Write one part (local labels) into `merged` (global ids) wherever it is nonzero."""
    if array.shape != merged.shape:
        raise InputError(f"Expected part label maps of shape {merged.shape}, got {array.shape}.")
    n_local = max(int(array.max()) + 1 if array.size else 1, max([0, *part_labels]) + 1)
    mapped = local_to_global_lut(part_labels, global_labels, n_local=n_local)[array]
    np.copyto(merged, mapped, where=mapped != 0)


def merge_parts(
    parts: Sequence[tuple[np.ndarray, Mapping[int, str]]], global_labels: Mapping[int, str]
) -> np.ndarray:
    """One global label array from (local label array, {local: name}) pairs, later parts winning."""
    if not parts:
        raise InputError("Expected at least one part label map to merge, got none.")
    merged = empty_merge(parts[0][0].shape, global_labels)
    for array, part_labels in parts:
        merge_into(merged, array, part_labels, global_labels)
    return merged


def keep_labels(array: np.ndarray, keep: Sequence[int]) -> np.ndarray:
    """`array` with every label not in `keep` set to 0 (a new array)."""
    return np.where(np.isin(array, np.asarray(list(keep), dtype=array.dtype)), array, 0).astype(
        array.dtype, copy=False
    )
