"""One phantom: body plan -> grid -> painted labels and HU -> CT simulation -> orientation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from totalseg.anatomy.registry import ClassMapVersion
from totalseg.image import Image, LabelMap
from totalseg.phantom.abdomen import add_abdomen
from totalseg.phantom.body import Body
from totalseg.phantom.bones import add_bones
from totalseg.phantom.ct import finish_ct
from totalseg.phantom.effects import DEFAULT_EFFECTS, PopulationEffect
from totalseg.phantom.grid import RenderGrid, fov_extent_mm, reorient
from totalseg.phantom.head import add_head
from totalseg.phantom.labels import to_class_map, to_structure_labels
from totalseg.phantom.params import SubjectParams, sample_subject_params
from totalseg.phantom.render import render_labels, render_parts
from totalseg.phantom.softtissue import add_soft_tissue
from totalseg.phantom.spine import add_spine
from totalseg.phantom.thorax import add_thorax
from totalseg.phantom.tissues import resolve
from totalseg.phantom.vessels import add_vessels

__all__ = ["Phantom", "build_body", "fit_grid", "generate_subject"]

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Phantom:
    """A synthetic CT with exact ground truth.

    `image`: int16 HU; `labels`: the 124 structures (ids in registry order, `labels.labels`
    names them); both in the stored orientation `params.orientation`.
    """

    image: Image
    labels: LabelMap
    params: SubjectParams

    def label_map(self, version: ClassMapVersion) -> LabelMap:
        """Ground truth in a class map's ids (v1: 104 classes, v2: 117 classes)."""
        # structure ids 1..124 are the internal ids of the renderer (registry order)
        arr, cmap = to_class_map(np.asarray(self.labels.array), version)
        return LabelMap(arr, self.labels.affine, cmap)


def build_body(
    params: SubjectParams, *, effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS
) -> Body:
    """All parts of one subject (reference frame)."""
    body = Body(params, effects=tuple(effects))
    add_soft_tissue(body)
    add_spine(body)
    add_bones(body)
    add_thorax(body)
    add_vessels(body)
    add_abdomen(body)
    add_head(body)
    return body


def fit_grid(params: SubjectParams, body: Body) -> RenderGrid:
    """The output grid: the FOV's z range, x/y fitted to the body (+ table) plus margins."""
    lo, hi = fov_extent_mm(params)
    coarse = RenderGrid.covering(params, lo, hi, (8.0, 8.0, 8.0))
    outline = [p for p in body.parts if p.label in ("skin", "table")]
    labels = render_labels(outline, coarse)
    found = np.argwhere(labels > 0)
    if len(found) == 0:
        return RenderGrid.covering(params, lo, hi, params.spacing_mm)
    ijk_lo, ijk_hi = found.min(axis=0) - 0.5, found.max(axis=0) + 0.5
    origin, sp = np.asarray(coarse.origin_mm), np.asarray(coarse.spacing_mm)
    blo, bhi = origin + ijk_lo * sp, origin + ijk_hi * sp
    mx, my, _mz = params.fov_margin_mm
    new_lo = np.array([blo[0] - mx, blo[1] - my, lo[2]])
    new_hi = np.array([bhi[0] + mx, bhi[1] + my, hi[2]])
    return RenderGrid.covering(params, new_lo, new_hi, params.spacing_mm)


def generate_subject(
    params: SubjectParams | int,
    *,
    effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS,
    progress: ProgressFn | None = None,
    **sample_options: object,
) -> Phantom:
    """Generate one phantom from parameters or a seed (then drawn by `sample_subject_params`)."""
    if not isinstance(params, SubjectParams):
        params = sample_subject_params(int(params), **sample_options)  # type: ignore[arg-type]
    body = build_body(params, effects=effects)
    grid = fit_grid(params, body)
    tissues = resolve(params, tuple(effects))
    internal, hu = render_parts(body.parts, grid, tissues, progress=progress)
    assert hu is not None
    ct = finish_ct(hu, internal, tissues, params, grid.spacing_mm)
    del hu
    structure, names = to_structure_labels(internal)
    ct_arr, affine = reorient(ct, grid.affine, params.orientation)
    lab_arr, _ = reorient(structure, grid.affine, params.orientation)
    logger.debug("phantom seed=%s shape=%s labels=%d", params.seed, ct_arr.shape, len(names))
    return Phantom(Image(ct_arr, affine), LabelMap(lab_arr, affine, names), params)
