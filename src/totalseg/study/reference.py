"""Normative reference values: age- and sex-specific percentile curves per structure and measure.

Model: a location/scale model per structure, measure and sex, fitted by least squares
(numpy; the B-spline basis from scipy):
- the measure is transformed to an about normal scale: log(volume_ml), mean HU as is;
- location mu(age): ordinary least squares on a cubic B-spline of age (`scipy.interpolate`
  basis, interior knots at the age terciles of the sex's measurements);
- scale sigma(age): log |residual| regressed on 1 and age (least squares), so
  sigma = exp(fit + 0.635), the bias of E log|Z| of a standard normal Z;
- percentile p at an age: mu + z_p sigma, back-transformed (exp for volume).

Why location/scale and not quantile regression (statsmodels QuantReg) per percentile: a z-score
of a new scan (`totalseg stats --reference`) needs the whole distribution at its age, which
separate quantile curves do not give (they only interpolate between the fitted percentiles,
and may cross); the 2.5 and 97.5 % curves of a quantile regression rest on the few subjects in
the tails, so with a few hundred subjects per sex they are noisy, where the location/scale
model estimates them from every subject; and it costs two linear fits per curve instead of one
iterative fit per percentile. The price is the normality assumption on the transformed scale
(no skewness or kurtosis as a GAMLSS BCCG/BCT model would fit); `reference_bands.csv` checks
it per 10-year age band: the observed fraction below the 2.5 % and above the 97.5 % curve.
The standard errors of location and log(scale) at each age (columns `location_se`,
`log_scale_se`) give the sampling error of a percentile on the transformed scale:
sqrt(location_se**2 + (z_p * scale * log_scale_se)**2).

Outputs (`write_reference`), schema version `SCHEMA_VERSION` (a column of every table, and
metadata of the Parquet file and of `reference.json`):
- `reference.parquet` / `.csv`: one row per structure x measure x sex x age (whole years over
  the support of that sex's measurements), columns `REFERENCE_COLUMNS`;
- `reference_bands.csv`: per structure x measure x sex x 10-year age band: n and coverage;
- `reference.json`: schema version, column documentation, model, source, percentiles;
- `figures/fan_<measure>_<structure>.png`: percentile fans (growth-chart style) per sex.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from totalseg.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PERCENTILES",
    "REFERENCE_COLUMNS",
    "SCHEMA_VERSION",
    "ReferenceConfig",
    "fit_reference",
    "percentile_column",
    "write_reference",
]

SCHEMA_VERSION = 1
PERCENTILES = (2.5, 10.0, 25.0, 50.0, 75.0, 90.0, 97.5)
_LOG_ABS_BIAS = 0.6351814227307391  # -E[log |Z|], Z ~ N(0, 1)


def percentile_column(p: float) -> str:
    """Column name of a percentile: 2.5 -> 'p2_5', 50 -> 'p50'."""
    return "p" + f"{p:g}".replace(".", "_")


COLUMN_DOCS: dict[str, str] = {
    "schema_version": "version of this table's layout",
    "structure": "structure name (class map v2 names)",
    "measure": "volume_ml or mean_hu",
    "sex": "M or F",
    "age": "age in years (whole years over the support)",
    "transform": "scale of location/scale: log (volume) or identity (HU)",
    "location": "mu(age) on the transformed scale",
    "scale": "sigma(age) on the transformed scale",
    "location_se": "standard error of location (from the OLS fit's covariance)",
    "log_scale_se": "standard error of log(scale) (from the scale fit's covariance)",
    **{percentile_column(p): f"{p:g} % percentile, in the measure's unit" for p in PERCENTILES},
    "n_band": "measurements of this sex in the 10-year age band holding this age",
    "n_sex": "measurements of this sex and structure in the reference",
    "age_min": "youngest age of this sex's measurements (support)",
    "age_max": "oldest age of this sex's measurements (support)",
}
REFERENCE_COLUMNS = tuple(COLUMN_DOCS)


@dataclass(frozen=True)
class ReferenceConfig:
    """Options of `fit_reference`; see the module docstring for the model."""

    min_n: int = 50
    band_years: float = 10.0
    n_interior_knots: int = 2
    include_incomplete: bool = False
    measures: tuple[str, ...] = ("volume_ml", "mean_hu")

    def __post_init__(self) -> None:
        if self.min_n < 10:
            raise ConfigError(f"Expected min_n >= 10 measurements per sex, got {self.min_n}.")
        if not 1.0 <= self.band_years <= 50.0:
            raise ConfigError(f"Expected an age band of 1-50 years, got {self.band_years}.")
        if not 0 <= self.n_interior_knots <= 6:
            raise ConfigError(f"Expected 0-6 interior knots, got {self.n_interior_knots}.")


def _basis(age: np.ndarray, knots: np.ndarray) -> np.ndarray:
    from scipy.interpolate import BSpline

    x = np.clip(age, knots[0], knots[-1])
    return np.asarray(BSpline.design_matrix(x, knots, 3, extrapolate=False).toarray())


def _knots(age: np.ndarray, n_interior: int) -> np.ndarray:
    lo, hi = float(age.min()), float(age.max())
    inner = np.quantile(age, np.linspace(0, 1, n_interior + 2)[1:-1]) if n_interior else []
    return np.concatenate([[lo] * 4, np.asarray(inner, float), [hi] * 4])


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares coefficients, their covariance s^2 (X'X)^-1, and the residuals."""
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    dof = max(1, x.shape[0] - x.shape[1])
    cov = float(resid @ resid) / dof * np.linalg.pinv(x.T @ x)
    return coef, cov, resid


def _fit_curve(age: np.ndarray, y: np.ndarray, config: ReferenceConfig) -> dict[str, Any]:
    knots = _knots(age, config.n_interior_knots)
    loc, loc_cov, resid = _ols(_basis(age, knots), y)
    log_abs = np.log(np.maximum(np.abs(resid), 1e-12 * max(1.0, float(np.std(y)))))
    scale, scale_cov, _ = _ols(np.column_stack([np.ones_like(age), age]), log_abs)
    return {"knots": knots, "loc": loc, "loc_cov": loc_cov, "scale": scale, "scale_cov": scale_cov}


def _evaluate(curve: dict[str, Any], ages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = _basis(ages, curve["knots"]) @ curve["loc"]
    sigma = np.exp(curve["scale"][0] + curve["scale"][1] * ages + _LOG_ABS_BIAS)
    return mu, sigma


def _standard_errors(curve: dict[str, Any], ages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SE of location and of log(scale) at each age (delta method on the fits' covariance)."""
    b = _basis(ages, curve["knots"])
    x = np.column_stack([np.ones_like(ages), ages])
    se_mu = np.sqrt(np.einsum("ij,jk,ik->i", b, curve["loc_cov"], b))
    se_log_sigma = np.sqrt(np.einsum("ij,jk,ik->i", x, curve["scale_cov"], x))
    return se_mu, se_log_sigma


def fit_reference(
    frame: pd.DataFrame,
    *,
    min_volumes_ml: dict[str, float],
    config: ReferenceConfig = ReferenceConfig(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference table, band table) of a tidy study table (`load_study_table`)."""
    import pandas as pd
    from scipy import stats

    from totalseg.study.exclusion import apply_exclusions

    kept, _ = apply_exclusions(frame, min_volumes_ml, include_incomplete=config.include_incomplete)
    kept = kept.loc[kept["age"].notna() & kept["sex"].isin(["M", "F"])]
    if kept.empty:
        raise InputError(
            "Expected measurements with a known age and sex (M/F) after exclusion, got none; "
            "check the table's age and sex columns."
        )
    z = stats.norm.ppf(np.asarray(PERCENTILES) / 100.0)
    rows, bands = [], []
    for measure in config.measures:
        data = kept.loc[kept[measure].notna(), ["structure", "sex", "age", measure]]
        if measure == "volume_ml":
            data = data.loc[data[measure] > 0]
        for (structure, sex), g in data.groupby(["structure", "sex"], sort=True):
            if len(g) < config.min_n or np.ptp(g["age"].to_numpy()) == 0:
                continue
            age = g["age"].to_numpy(dtype=float)
            y = _transform(g[measure].to_numpy(dtype=float), measure)
            curve = _fit_curve(age, y, config)
            key = {"structure": structure, "measure": measure, "sex": sex}
            rows.append(_curve_rows(curve, age, z, key, config))
            bands.extend(_band_rows(curve, age, y, key, config))
    if not rows:
        raise InputError(
            f"Expected at least {config.min_n} measurements of one structure and sex, got "
            "fewer everywhere; lower --min-n or use a larger cohort."
        )
    columns = {c: np.concatenate([np.broadcast_to(r[c], r["age"].shape) for r in rows])
               for c in REFERENCE_COLUMNS}  # fmt: skip
    return pd.DataFrame(columns), pd.DataFrame(bands)


def _transform(values: np.ndarray, measure: str) -> np.ndarray:
    return np.log(values) if measure == "volume_ml" else values


def _band_edges(age: np.ndarray, band_years: float) -> np.ndarray:
    lo = math.floor(float(age.min()) / band_years) * band_years
    hi = math.floor(float(age.max()) / band_years) * band_years + band_years
    return np.arange(lo, hi + band_years / 2, band_years)


def _curve_rows(
    curve: dict[str, Any],
    age: np.ndarray,
    z: np.ndarray,
    key: dict[str, str],
    config: ReferenceConfig,
) -> dict[str, Any]:
    ages = np.arange(math.ceil(age.min()), math.floor(age.max()) + 1, dtype=float)
    if ages.size == 0:
        ages = np.array([float(np.median(age))])
    mu, sigma = _evaluate(curve, ages)
    se_mu, se_log_sigma = _standard_errors(curve, ages)
    back = np.exp if key["measure"] == "volume_ml" else (lambda v: v)
    edges = _band_edges(age, config.band_years)
    counts = np.histogram(age, edges)[0]
    band = np.clip(np.searchsorted(edges, ages, side="right") - 1, 0, counts.size - 1)
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        **key,
        "age": ages,
        "transform": "log" if key["measure"] == "volume_ml" else "identity",
        "location": mu,
        "scale": sigma,
        "location_se": se_mu,
        "log_scale_se": se_log_sigma,
    }
    for p, zp in zip(PERCENTILES, z, strict=True):
        out[percentile_column(p)] = back(mu + zp * sigma)
    out.update(n_band=counts[band], n_sex=age.size, age_min=age.min(), age_max=age.max())
    return out


def _band_rows(
    curve: dict[str, Any],
    age: np.ndarray,
    y: np.ndarray,
    key: dict[str, str],
    config: ReferenceConfig,
) -> list[dict[str, Any]]:
    mu, sigma = _evaluate(curve, age)
    zs = (y - mu) / sigma
    edges = _band_edges(age, config.band_years)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        sel = (age >= lo) & (age < hi)
        n = int(sel.sum())
        rows.append(
            {
                "schema_version": SCHEMA_VERSION,
                **key,
                "band": f"{lo:g}-{hi:g}",
                "n": n,
                "frac_below_p2_5": float((zs[sel] < -1.959964).mean()) if n else math.nan,
                "frac_above_p97_5": float((zs[sel] > 1.959964).mean()) if n else math.nan,
                "median_z": float(np.median(zs[sel])) if n else math.nan,
            }
        )
    return rows


def write_reference(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: ReferenceConfig = ReferenceConfig(),
    min_volumes: str | os.PathLike[str] | None = None,
    structures: Sequence[str] | None = None,
    max_figures: int = 8,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Fit the reference of a study or long table and write its tables, metadata and fans."""
    from totalseg.stats.formats import atomic_write_bytes, atomic_write_text
    from totalseg.study.exclusion import load_min_volumes
    from totalseg.study.reference_figures import fan_figure, fan_structures
    from totalseg.study.table import load_study_table

    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    frame = load_study_table(source)
    say(f"fitting percentile curves of {frame['structure'].nunique()} structures")
    table, bands = fit_reference(frame, min_volumes_ml=load_min_volumes(min_volumes), config=config)
    meta = _metadata(source, frame, config)
    _write_parquet(table, out / "reference.parquet", meta)
    atomic_write_text(out / "reference.csv", table.to_csv(index=False))
    atomic_write_text(out / "reference_bands.csv", bands.to_csv(index=False))
    atomic_write_text(out / "reference.json", json.dumps(meta, indent=2))
    say("drawing percentile fans")
    for measure in config.measures:
        for structure in fan_structures(table, measure, structures, max_figures):
            png = fan_figure(frame, table, structure, measure)
            atomic_write_bytes(out / "figures" / f"fan_{measure}_{structure}.png", png)
    return table


def _metadata(
    source: str | os.PathLike[str], frame: pd.DataFrame, config: ReferenceConfig
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "totalseg reference percentiles",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": str(source),
        "n_scans": int(frame["scan_id"].nunique()),
        "percentiles": list(PERCENTILES),
        "model": "location/scale: least squares on a cubic B-spline of age (location), "
        "log|residual| "
        "linear in age (scale); log(volume), HU as is; see totalseg.study.reference",
        "config": {k: getattr(config, k) for k in ("min_n", "band_years", "n_interior_knots")},
        "columns": COLUMN_DOCS,
    }


def _write_parquet(table: pd.DataFrame, path: Path, meta: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    schema_meta = {
        **(arrow.schema.metadata or {}),
        b"totalseg_reference": json.dumps(meta).encode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(arrow.replace_schema_metadata(schema_meta), tmp)
    os.replace(tmp, path)
