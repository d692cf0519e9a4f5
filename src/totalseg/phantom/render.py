"""Paint parts onto a grid: labels by priority (no overlaps), HU with partial-volume edges."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from totalseg.phantom.body import Part
from totalseg.phantom.grid import RenderGrid
from totalseg.phantom.shapes import memoized
from totalseg.phantom.tissues import N_STRUCTURES, TissueHU, label_id

__all__ = ["render_labels", "render_parts"]

logger = logging.getLogger(__name__)

_F = np.float32


def _sorted(parts: Sequence[Part]) -> list[Part]:
    return [p for _, _, p in sorted((p.order, i, p) for i, p in enumerate(parts))]


def _blend(hu: np.ndarray, d: np.ndarray, tissue: TissueHU, ramp_mm: float, hard: bool) -> None:
    """hu <- hu * (1 - coverage) + coverage-weighted tissue HU, in place (a view)."""
    if hard:
        inside = d < 0
        value: np.ndarray | np.float32 = _F(tissue.inner_hu)
        if tissue.rim_hu is not None and tissue.rim_mm > 0:
            # the rim's share of the voxel's inside part: smooth in d, so thin bones get a
            # geometry-independent mix instead of sampling noise
            rim = np.clip((d + _F(tissue.rim_mm)) / _F(ramp_mm) + _F(0.5), 0, 1)
            value = _F(tissue.inner_hu) + rim * _F(tissue.rim_hu - tissue.inner_hu)
        np.copyto(hu, value, where=inside, casting="unsafe")
        return
    inv = _F(-1.0 / ramp_mm)
    cover = d * inv
    cover += _F(0.5)
    np.clip(cover, 0, 1, out=cover)
    if tissue.rim_hu is None or tissue.rim_mm <= 0:
        tmp = _F(tissue.inner_hu) - hu
        tmp *= cover
        hu += tmp
        return
    inner = d + _F(tissue.rim_mm)
    inner *= inv
    inner += _F(0.5)
    np.clip(inner, 0, 1, out=inner)  # coverage of the interior (inside the rim)
    hu *= _F(1) - cover
    cover -= inner  # coverage of the rim
    cover *= _F(tissue.rim_hu)
    hu += cover
    inner *= _F(tissue.inner_hu)
    hu += inner


def render_parts(
    parts: Sequence[Part],
    grid: RenderGrid,
    tissues: dict[str, TissueHU] | None,
    *,
    hard: bool = False,
    background_hu: float = -1000.0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (uint8 internal ids) and HU (float32, or None without tissues) of all parts.

    Parts are painted in ascending `order` (ties: insertion order); a later part overwrites,
    so every voxel holds exactly one label. `hard` is the ground-truth statistics mode: each
    voxel gets the tissue value of its own label (rims by their share of the voxel), no partial
    volume with neighbours, and tissues painted before every structure (skin, fat, generic
    muscle, table) are skipped since they cannot change any structure's voxels.
    """
    spacing = np.asarray(grid.spacing_mm)
    ramp_mm = float(np.prod(spacing) ** (1.0 / 3.0))
    labels = np.zeros(grid.shape, dtype=np.uint8)
    hu = None if tissues is None else np.full(grid.shape, background_hu, dtype=np.float32)
    full = grid.view(pad_mm=ramp_mm + 1.0)
    scale = _F(grid.distance_scale)
    ordered = _sorted(parts)
    if hard:  # tissues painted before every structure cannot change any structure's voxels
        first = min((p.order for p in ordered if label_id(p.label) <= N_STRUCTURES), default=0.0)
        ordered = [p for p in ordered if p.order >= first or label_id(p.label) <= N_STRUCTURES]
    with memoized():
        for n, part in enumerate(ordered):
            found = full.sub(part.shape.lo, part.shape.hi)
            if found is not None:
                view, sl = found
                d = np.broadcast_to(part.shape.sdf(view) * scale, view.shape)
                np.putmask(labels[sl], d < 0, label_id(part.label))
                if hu is not None and tissues is not None:
                    _blend(hu[sl], d, tissues[part.tissue], ramp_mm, hard)
            if progress is not None:
                progress(n + 1, len(ordered))
    return labels, hu


def render_labels(parts: Sequence[Part], grid: RenderGrid) -> np.ndarray:
    """Only the label array (fast path for extents and statistics)."""
    labels, _ = render_parts(parts, grid, None)
    return labels
