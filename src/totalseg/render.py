"""A preview PNG of a segmentation that a person can check in a second (matplotlib, Agg).

Three views of the canonical (RAS) volume, in the radiological convention (the patient's right
on the left of each panel): a coronal projection (seen from the front) and a sagittal one (seen
from the left) -- the CT as a mean-intensity projection (a radiograph-like grey image), the
labels as the nearest labelled voxel along each ray, in colour over it, so every structure
shows wherever it lies -- and the axial slice with the most labelled voxels (soft-tissue
window). A legend lists the structures
present (the largest first). Millimetres are kept: panels have the patient's proportions.
No display is needed (the Agg backend renders to memory, then the file is written atomically).
"""

from __future__ import annotations

import colorsys
import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from totalseg.errors import InputError, MissingDependencyError
from totalseg.image import Image, LabelMap
from totalseg.preprocess.orientation import to_canonical

__all__ = ["label_colour", "render_preview", "write_preview"]

#: at most this many structures in the legend (the largest ones; "+N more" for the rest)
MAX_LEGEND = 40
#: the grey windows of the CT: projections (mean HU along a ray), slices (soft tissue)
PROJECTION_WINDOW_HU = (-900.0, 300.0)
SLICE_WINDOW_HU = (-160.0, 240.0)
#: the height of the figure's panel row, in inches at 100 dpi
_PANEL_HEIGHT_IN = 6.0

Window = tuple[tuple[float, float], tuple[float, float]]  # grey window (HU), (row, col) mm


def label_colour(label: int) -> tuple[float, float, float]:
    """A fixed, well-separated RGB colour for a label id (golden-ratio hues)."""
    hue = (label * 0.618033988749895) % 1.0
    value = 0.95 if label % 2 else 0.8
    return colorsys.hsv_to_rgb(hue, 0.85, value)


def _nearest_label(labels: np.ndarray, axis: int, *, from_end: bool) -> np.ndarray:
    """The first nonzero label along `axis` (seen from its end when `from_end`), 0 if none."""
    data = np.flip(labels, axis) if from_end else labels
    hit = data != 0
    first = np.argmax(hit, axis=axis)
    values = np.take_along_axis(data, np.expand_dims(first, axis), axis=axis).squeeze(axis)
    return np.where(hit.any(axis=axis), values, 0)


def _screen(plane: np.ndarray) -> np.ndarray:
    """(first axis, second axis) of a RAS projection -> rows top-down, columns left-right:
    both axes reversed (superior/anterior at the top, the patient's right on the left)."""
    return np.ascontiguousarray(plane.T[::-1, ::-1])


def _views(image: Image, labels: LabelMap) -> list[tuple[str, np.ndarray, np.ndarray, Window]]:
    """(title, grey CT, labels, grey window, (row, column) spacing in mm) per view, on screen
    axes: coronal and sagittal projections, the axial slice with the most labelled voxels."""
    ct, _ = to_canonical(image)
    lab, _ = to_canonical(labels)
    hu = np.clip(np.asarray(ct.array, dtype=np.float32), -1024.0, 3071.0)
    ids = np.asarray(lab.array)
    sx, sy, sz = ct.spacing_mm
    coronal = (_screen(hu.mean(axis=1)), _screen(_nearest_label(ids, 1, from_end=True)))
    sagittal = (_screen(hu.mean(axis=0)), _screen(_nearest_label(ids, 0, from_end=False)))
    k = int(np.argmax((ids != 0).sum(axis=(0, 1))))
    axial = (_screen(hu[:, :, k]), _screen(ids[:, :, k]))
    return [
        ("coronal (projection)", *coronal, (PROJECTION_WINDOW_HU, (sz, sx))),
        ("sagittal (projection)", *sagittal, (PROJECTION_WINDOW_HU, (sz, sy))),
        (f"axial (slice {k})", *axial, (SLICE_WINDOW_HU, (sy, sx))),
    ]


def _rgba(view: np.ndarray, labels: Mapping[int, str]) -> np.ndarray:
    top = max([int(view.max()) if view.size else 0, *labels])
    lut = np.zeros((top + 1, 4), dtype=np.float32)
    for value in range(1, top + 1):
        lut[value, :3] = label_colour(value)
        lut[value, 3] = 0.7
    return lut[view]


def _legend_entries(labels: LabelMap) -> tuple[list[tuple[int, str]], int]:
    counts = np.bincount(np.asarray(labels.array).ravel().astype(np.int64))
    present = [v for v in np.flatnonzero(counts) if v != 0]
    present.sort(key=lambda v: -counts[v])
    names = [(int(v), labels.labels.get(int(v), f"label_{v}")) for v in present]
    return names[:MAX_LEGEND], max(0, len(names) - MAX_LEGEND)


def render_preview(image: Image, labels: LabelMap, *, title: str = "") -> bytes:
    """The PNG bytes of the preview of `labels` (on the grid of `image`)."""
    try:
        from matplotlib.figure import Figure  # no pyplot: rendered by Agg, no display, no global
        from matplotlib.patches import Patch
    except ImportError:
        raise MissingDependencyError(
            "Expected matplotlib for the preview, got none installed; install it with: "
            "pip install 'totalseg[preview]'."
        ) from None

    image.check_same_grid(labels)
    if image.array.ndim != 3:
        raise InputError(f"Expected a 3D volume to preview, got shape {image.shape}.")
    views = _views(image, labels)
    # one scale (pixels per mm) for every panel: the axial slice is as wide as the body
    sizes_mm = [(g.shape[0] * w[1][0], g.shape[1] * w[1][1]) for _, g, _, w in views]
    height_mm = max(h for h, _ in sizes_mm)
    entries, n_more = _legend_entries(labels)
    legend_mm = height_mm * (0.45 if len(entries) <= 20 else 0.8)
    widths = [w for _, w in sizes_mm] + [legend_mm]
    dpi = 100
    fig = Figure(figsize=(_PANEL_HEIGHT_IN * sum(widths) / height_mm, _PANEL_HEIGHT_IN + 0.6),
                 dpi=dpi)  # fmt: skip
    grid = fig.add_gridspec(1, 4, width_ratios=widths)
    for index, (name, grey, view, (window, (row_mm, col_mm))) in enumerate(views):
        ax = fig.add_subplot(grid[0, index])
        aspect = row_mm / col_mm
        ax.imshow(grey, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect,
                  interpolation="bilinear")  # fmt: skip
        ax.imshow(_rgba(view, labels.labels), aspect=aspect, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    legend_ax = fig.add_subplot(grid[0, 3])
    legend_ax.set_axis_off()
    handles = [Patch(color=label_colour(v), label=n) for v, n in entries]
    if n_more:
        handles.append(Patch(color="white", label=f"+{n_more} more"))
    if handles:
        legend_ax.legend(handles=handles, loc="center left", fontsize=7, frameon=False,
                         ncol=1 if len(handles) <= 20 else 2)  # fmt: skip
    else:
        legend_ax.text(0, 0.5, "no structure found", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.03)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def write_preview(
    image: Image, labels: LabelMap, path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Render the preview and write it atomically as a PNG; returns the path."""
    from totalseg.stats.formats import atomic_write_bytes

    out = Path(path)
    atomic_write_bytes(out, render_preview(image, labels, title=title))
    return out
