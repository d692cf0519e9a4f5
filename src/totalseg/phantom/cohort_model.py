"""The fast ("model") engine of stats-mode cohorts: one template render per sex, then formulas.

Rendering every subject (`cohort.subject_statistics`, engine "render") costs about a second
per subject at 5 mm. This engine renders one reference body per sex (175 cm, age 50, seed 0)
once per process and spacing, and derives every subject from the generator's own random draws:
- volume = template volume / template size factor x the subject's size factor (its random
  jitter x planted age and sex effects, `Body.vol`) x its height scale (h / 175) ** 2.6;
- mean HU = the structure's tissue model for the subject (`tissues.resolve`: phase, planted
  age shift, random subject offset), mixed as in the template: the template's mean rim share
  for rimmed tissues (cortex, walls; rims have a fixed thickness, so the share scales with
  1 / the structure's linear size) and its voxel share of tissues painted inside the
  structure (hepatic veins in the liver, eyes in the face).
The subject's shape deformations and the overlaps they change are held at the template's, so a
volume differs from the rendered one by a few per cent; the age, sex and height effects, the
jitter and the HU offsets are exactly the generator's. `true_log_volume` gives the resulting
population distribution of a structure's volume at an age and sex.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from totalseg.phantom.effects import (
    DEFAULT_EFFECTS,
    DEFAULT_HEIGHT_TREND,
    REFERENCE_AGE_YEARS,
    REFERENCE_HEIGHT_CM,
    HeightTrend,
    PopulationEffect,
    hu_shift,
    volume_factor,
)
from totalseg.phantom.labels import MERGES, structure_names
from totalseg.phantom.params import SubjectParams

__all__ = ["Template", "cohort_params", "model_statistics", "template", "true_log_volume"]

_HEART_PARTS = tuple(k for k, v in MERGES["v2"].items() if v == "heart")
_FOREIGN_HU = 1000.0  # marker value of tissues painted inside a structure of another name


@dataclass(frozen=True)
class Template:
    """Per structure of one sex's reference body: unit volume (ml), mean rim share, and the
    voxel share of each tissue other than the structure's own painted inside it."""

    unit_ml: dict[str, float]
    rim_share: dict[str, float]
    foreign: dict[str, dict[str, float]]
    size_mm: dict[str, float]  # linear size factor of the template's structure (world mm)


@cache
def template(sex: str, spacing_mm: float) -> Template:
    """The reference body of one sex rendered once (cached per process)."""
    from totalseg.phantom.generate import build_body
    from totalseg.phantom.grid import RenderGrid, fov_extent_mm
    from totalseg.phantom.params import sample_subject_params
    from totalseg.phantom.render import render_parts
    from totalseg.phantom.tissues import TissueHU, resolve

    params = sample_subject_params(0, fov="whole-body", spacing_mm=spacing_mm, sex=sex)
    params = params.with_(age_years=REFERENCE_AGE_YEARS, height_cm=REFERENCE_HEIGHT_CM)
    params = params.with_(bmi=24.0, roll_deg=0.0, shift_mm=(0.0, 0.0, 0.0))
    body = build_body(params, effects=())
    lo, hi = fov_extent_mm(params)
    grid = RenderGrid.covering(params, lo, hi, params.spacing_mm)
    owner = {p.tissue: p.label for p in body.parts if p.tissue == p.label}
    coded = {
        name: TissueHU(0.0, 1.0, t.rim_mm) if name in owner else TissueHU(_FOREIGN_HU)
        for name, t in resolve(params, ()).items()
    }
    labels, hu = render_parts(body.parts, grid, coded, hard=True)
    assert hu is not None
    foreign_tissues = {(p.label, p.tissue) for p in body.parts if p.tissue != p.label}
    flat, values = labels.ravel(), hu.ravel().astype(np.float64)
    is_foreign = values >= _FOREIGN_HU - 0.5
    counts = np.bincount(flat, minlength=256)
    n_foreign = np.bincount(flat, weights=is_foreign, minlength=256)
    rim_sum = np.bincount(flat, weights=np.where(is_foreign, 0.0, values), minlength=256)
    voxel_ml = float(np.prod(grid.spacing_mm)) / 1000.0
    unit, rim, foreign, size = {}, {}, {}, {}
    for i, name in enumerate(structure_names(), start=1):
        count = float(counts[i])
        unit[name] = count * voxel_ml / body.vol(name)
        size[name] = body.lin(name)
        own = count - float(n_foreign[i])
        rim[name] = float(rim_sum[i]) / own if own else 0.0
        tissues = [t for label, t in foreign_tissues if label == name]
        # one foreign tissue per structure in this anatomy (liver: hepatic_vein, face: eye)
        foreign[name] = {t: float(n_foreign[i]) / count for t in tissues} if count else {}
    return Template(unit, rim, foreign, size)


def cohort_params(
    seed: int, *, spacing_mm: float, height_trend: HeightTrend | None
) -> SubjectParams:
    """A cohort subject's parameters: drawn from its seed, height moved by the trend."""
    from totalseg.phantom.params import sample_subject_params

    params = sample_subject_params(seed, fov="whole-body", spacing_mm=spacing_mm)
    params = params.with_(roll_deg=0.0, shift_mm=(0.0, 0.0, 0.0))
    if height_trend is None:
        return params
    return params.with_(height_cm=height_trend.height_cm(params.height_cm, params.age_years))


@cache
def _rates(effects: tuple[PopulationEffect, ...], sex: str) -> tuple[dict[str, float], ...]:
    """Per name: log volume change per decade, sex volume factor, HU change per decade."""
    names = (*structure_names(), "hepatic_vein", "eye")
    at_ref = {n: volume_factor(n, age_years=REFERENCE_AGE_YEARS, sex=sex, effects=effects)
              for n in names}  # fmt: skip
    log_rate = {
        n: math.log(volume_factor(n, age_years=REFERENCE_AGE_YEARS + 10.0, sex=sex,
                                  effects=effects) / at_ref[n])
        for n in names
    }  # fmt: skip
    hu_rate = {n: hu_shift(n, age_years=REFERENCE_AGE_YEARS + 10.0, effects=effects) for n in names}
    return log_rate, at_ref, hu_rate


def model_statistics(
    seed: int,
    *,
    spacing_mm: float = 5.0,
    effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS,
    height_trend: HeightTrend | None = DEFAULT_HEIGHT_TREND,
    image_id: str = "",
) -> list[dict[str, Any]]:
    """Rows of one subject, laid out as `cohort.subject_statistics` (engine "model")."""
    from totalseg.phantom.body import Body
    from totalseg.phantom.tissues import resolve

    params = cohort_params(seed, spacing_mm=spacing_mm, height_trend=height_trend)
    tpl = template(params.sex, float(spacing_mm))
    log_rate, sex_factor, hu_rate = _rates(tuple(effects), params.sex)
    body = Body(params, effects=tuple(effects))
    tissues = resolve(params, ())  # phase and subject offset; the age shift is added here
    decades = (params.age_years - REFERENCE_AGE_YEARS) / 10.0
    scale = float(np.prod(params.scale))

    def hu(name: str, size: float = 1.0) -> float:
        t = tissues[name]
        share = min(1.0, tpl.rim_share.get(name, 0.0) * size)
        rim = 0.0 if t.rim_hu is None else share * (t.rim_hu - t.inner_hu)
        return t.inner_hu + rim + hu_rate[name] * decades

    per: dict[str, tuple[float, float]] = {}
    for name in structure_names():
        factor = body.jitter(name) * sex_factor[name] * math.exp(log_rate[name] * decades)
        inside = tpl.foreign[name]
        rim_size = tpl.size_mm[name] / (factor * scale) ** (1.0 / 3.0)
        own = hu(name, rim_size)
        mean = (1.0 - sum(inside.values())) * own + sum(f * hu(t) for t, f in inside.items())
        per[name] = (tpl.unit_ml[name] * factor * scale, mean)
    heart = [per[n] for n in _HEART_PARTS]
    heart_ml = sum(v for v, _ in heart)
    per["heart"] = (heart_ml, sum(v * h for v, h in heart) / heart_ml)
    base = {
        "image_id": image_id,
        "age": round(params.age_years, 2),
        "sex": params.sex,
        "height_cm": round(params.height_cm, 1),
        "bmi": round(params.bmi, 2),
    }
    return [
        {**base, "structure": n, "volume_ml": v, "mean_hu": h if v > 0 else math.nan}
        for n, (v, h) in per.items()
    ]


#: sex -> (mean, sd) of the drawn height (cm), as `sample_subject_params` draws it
_HEIGHT_CM = {"M": (177.0, 7.0), "F": (164.0, 6.5)}


def true_log_volume(
    name: str,
    *,
    age_years: float,
    sex: str,
    spacing_mm: float = 5.0,
    effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS,
    height_trend: HeightTrend | None = DEFAULT_HEIGHT_TREND,
) -> tuple[float, float]:
    """(mean, sd) of log(volume_ml) of a structure among model-engine subjects of this age
    and sex: the template, the planted effects, the jitter (normal on the log scale) and the
    height term 2.6 log(h / 175) (h from its clipped normal and the trend, by quadrature).
    The sum is about normal (the height term nearly is), so percentiles follow from it."""
    from scipy import stats

    from totalseg.phantom.body import jitter_log_sd

    tpl = template(sex, float(spacing_mm))
    log_rate, sex_factor, _ = _rates(tuple(effects), sex)
    decades = (age_years - REFERENCE_AGE_YEARS) / 10.0
    mean_h, sd_h = _HEIGHT_CM[sex]
    z = np.linspace(-8.0, 8.0, 4001)
    weight = stats.norm.pdf(z)
    weight /= weight.sum()
    height = np.clip(mean_h + sd_h * z, 145.0, 205.0)
    if height_trend is not None:
        height = np.clip(height + height_trend.cm_per_decade * decades, 145.0, 205.0)
    log_scale = 2.6 * np.log(height / REFERENCE_HEIGHT_CM)
    scale_mean = float(weight @ log_scale)
    scale_var = float(weight @ (log_scale - scale_mean) ** 2)
    mean = math.log(tpl.unit_ml[name] * sex_factor[name]) + log_rate[name] * decades + scale_mean
    return mean, math.sqrt(jitter_log_sd(name) ** 2 + scale_var)
