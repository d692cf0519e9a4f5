"""Per-structure measures of an image inside a label map, in one pass over the foreground.

The foreground voxels are grouped by label with one stable (radix) sort of their label values;
every measure of a structure is then computed on its contiguous slice of that order, so 117
structures on a 512x512x400 CT cost one sort plus O(n) work, not 117 full-volume masks.

Status of a structure:
- `ok`: present and away from the image border;
- `incomplete`: at least one voxel within `border_voxels` of the first or last index along any
  axis (the reference tool's rule, default 3): probably cut by the field of view; values are kept;
- `absent`: no voxel; every value is NaN (never 0).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from totalseg.errors import InputError, UnknownStructureError
from totalseg.image import Image, LabelMap
from totalseg.stats.table import StatsStatus, StructureStats, StructureStatsTable

__all__ = ["compute_statistics"]

log = logging.getLogger(__name__)

_NAN3 = (float("nan"),) * 3


def compute_statistics(
    image: Image,
    label_map: LabelMap,
    *,
    structures: Sequence[str] | None = None,
    border_voxels: int = 3,
    reference_compatible: bool = False,
) -> StructureStatsTable:
    """Volume, HU statistics, centroid, bounding box and status of every structure.

    `label_map` must be on the image grid (GeometryError otherwise). Structures are the names of
    `label_map.labels` (all of them, present or not), in label order, plus any present label
    without a name (`label_<id>`); `structures` selects and orders a subset of those names.
    `border_voxels=0` turns the border rule off.

    `reference_compatible=True` emulates the reference tool's `statistics.json` exactly: the
    image is cast to int16 first, volume = voxel count x product of the spacings, the mean is
    rounded to 5 decimals, and absent structures -- and, while the border rule is on,
    incomplete ones -- get volume and mean 0.0 (their status still says why).
    """
    image.check_same_grid(label_map)
    if border_voxels < 0:
        raise InputError(
            f"Expected border_voxels >= 0, got {border_voxels}; use 0 to turn the border rule off."
        )
    values = np.asarray(image.array)
    if reference_compatible:
        values = values.astype(np.int16)
    groups = _group_foreground(np.asarray(label_map.array), values)
    named = _select(label_map.labels, list(groups), structures)
    voxel_volume_mm3 = (
        float(np.prod(image.spacing_mm)) if reference_compatible else image.voxel_volume_mm3
    )
    rows = []
    for label, name in named:
        group = groups.get(label)
        if group is None:
            row = _absent(name, label)
        else:
            row = _measure(
                name,
                label,
                group,
                affine=np.asarray(image.affine),
                shape=image.shape,
                voxel_volume_mm3=voxel_volume_mm3,
                border_voxels=border_voxels,
            )
        if reference_compatible:
            row = row.as_reference(border_rule=border_voxels > 0)
        rows.append(row)
    return StructureStatsTable(
        rows=tuple(rows),
        shape=image.shape,
        spacing_mm=image.spacing_mm,
        voxel_volume_mm3=voxel_volume_mm3,
        border_voxels=border_voxels,
        reference_compatible=reference_compatible,
    )


def _select(
    labels: Mapping[int, str], present: list[int], structures: Sequence[str] | None
) -> list[tuple[int, str]]:
    """(label, name) pairs to report, in label order or in the requested order."""
    names: dict[int, str] = dict(labels)
    for label in present:
        names.setdefault(label, f"label_{label}")
    pairs = sorted((label, name) for label, name in names.items() if label != 0)
    if structures is None:
        return pairs
    by_name = {name: label for label, name in pairs}
    out = []
    for name in structures:
        if name not in by_name:
            import difflib

            close = difflib.get_close_matches(name, list(by_name), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownStructureError(
                f"Expected a structure of the label map ({len(by_name)} names), got {name!r}.{hint}"
                " List the label names with `totalseg stats CT SEG --json`."
            )
        out.append((by_name[name], name))
    return out


class _Group:
    """The voxels of one label: their flat indices and their image values."""

    __slots__ = ("flat_index", "values")

    def __init__(self, flat_index: np.ndarray, values: np.ndarray) -> None:
        self.flat_index = flat_index
        self.values = values


def _group_foreground(labels: np.ndarray, values: np.ndarray) -> dict[int, _Group]:
    """Foreground voxels grouped by label: one stable sort of the label values."""
    if labels.dtype.kind == "i" and labels.size and int(labels.min()) < 0:
        raise InputError(
            f"Expected non-negative label values, got minimum {int(labels.min())}; "
            "relabel the segmentation."
        )
    flat_labels = labels.reshape(-1)
    flat_index = np.flatnonzero(flat_labels)
    fg_labels = flat_labels[flat_index]
    order = np.argsort(fg_labels, kind="stable")
    flat_index = flat_index[order]
    fg_labels = fg_labels[order]
    fg_values = values.reshape(-1)[flat_index]
    counts = np.bincount(fg_labels) if fg_labels.size else np.zeros(1, dtype=np.intp)
    ends = np.cumsum(counts)
    return {
        int(i): _Group(
            flat_index[ends[i] - counts[i] : ends[i]], fg_values[ends[i] - counts[i] : ends[i]]
        )
        for i in np.flatnonzero(counts)
    }


def _measure(
    name: str,
    label: int,
    group: _Group,
    *,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    voxel_volume_mm3: float,
    border_voxels: int,
) -> StructureStats:
    vals = group.values.astype(np.float64)
    ijk = np.stack(np.unravel_index(group.flat_index, shape), axis=0)
    lo = ijk.min(axis=1)
    hi = ijk.max(axis=1)
    centroid_vox = ijk.mean(axis=1)
    n = int(vals.size)
    status: StatsStatus = "incomplete" if _touches_border(lo, hi, shape, border_voxels) else "ok"
    return StructureStats(
        name=name,
        label=label,
        status=status,
        n_voxels=n,
        volume_mm3=n * voxel_volume_mm3,
        mean_hu=float(vals.mean()),
        median_hu=float(np.median(vals)),
        std_hu=float(vals.std()),
        min_hu=float(vals.min()),
        max_hu=float(vals.max()),
        centroid_vox=_triple(centroid_vox),
        centroid_mm=_triple(_to_world(affine, centroid_vox[:, None])[:, 0]),
        bbox_min_vox=(int(lo[0]), int(lo[1]), int(lo[2])),
        bbox_max_vox=(int(hi[0]), int(hi[1]), int(hi[2])),
        **_world_box(affine, lo, hi),
    )


def _touches_border(
    lo: np.ndarray, hi: np.ndarray, shape: tuple[int, int, int], border_voxels: int
) -> bool:
    if border_voxels == 0:
        return False
    upper = np.asarray(shape) - border_voxels
    return bool(np.any(lo < border_voxels) or np.any(hi >= upper))


def _to_world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return affine[:3, :3] @ ijk + affine[:3, 3:4]


def _world_box(affine: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Mapping[str, tuple]:
    """Axis-aligned world box (mm) around the voxel centres at the 8 corners of the voxel box."""
    corners = np.array(
        [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])],
        dtype=np.float64,
    ).T
    world = _to_world(affine, corners)
    return {"bbox_min_mm": _triple(world.min(axis=1)), "bbox_max_mm": _triple(world.max(axis=1))}


def _triple(v: np.ndarray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def _absent(name: str, label: int) -> StructureStats:
    nan = float("nan")
    return StructureStats(
        name=name,
        label=label,
        status="absent",
        n_voxels=0,
        volume_mm3=nan,
        mean_hu=nan,
        median_hu=nan,
        std_hu=nan,
        min_hu=nan,
        max_hu=nan,
        centroid_vox=_NAN3,
        centroid_mm=_NAN3,
        bbox_min_vox=None,
        bbox_max_vox=None,
        bbox_min_mm=_NAN3,
        bbox_max_mm=_NAN3,
    )
