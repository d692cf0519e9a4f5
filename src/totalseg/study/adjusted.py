"""Age effects adjusted for covariates (`study analyze --adjust sex,height_cm,...`).

Per stratum, measure and structure, on the measurements kept after exclusion, with the
covariates given by name (columns of the study table; numeric columns are used as numbers,
any other column as categories, dummy-coded against its first level; a covariate that does not
vary within a stratum, such as sex within one sex, is left out there; rows missing a covariate
are dropped):
- partial Spearman correlation of age and the measure given the covariates: the ranks of age
  and of the measure are each residualised on the covariates (numeric covariates as ranks,
  categorical ones as dummies, with an intercept) by least squares, and correlated (Pearson);
  P from Student's t with n - 2 - k degrees of freedom (k covariate columns). With no
  covariates this is Spearman's r_s and its t-test P;
- robust linear model (statsmodels RLM, Huber's T norm, MAD scale): measure ~ 1 + age / 10 +
  covariates (numeric as numbers, categories as dummies). For volume the model is fitted to
  log(volume), and `effect_per_decade` is the relative change per decade, exp(b) - 1 (-0.05 =
  5 % smaller per decade, the unit of the phantom's planted effects); for mean HU it is HU per
  decade. `ci_low`/`ci_high`: the 95 % Wald interval, transformed alike.

Multiple testing, side by side: Bonferroni over the structures of each (stratum, measure)
family (`p_bonferroni`, `significant`: below `alpha`) and Benjamini-Hochberg false discovery
rate (`p_fdr`, adjusted P values of `scipy.stats.false_discovery_control`; `significant_fdr`:
below `fdr_q`), for the partial correlation and (prefixed `rlm_`) for the robust model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from totalseg.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ADJUSTED_COLUMNS", "add_corrections", "adjusted_family", "check_covariates"]

ADJUSTED_COLUMNS = [
    "structure", "n", "adjusted_for", "r_s_partial", "p", "effect_per_decade", "ci_low",
    "ci_high", "effect_unit", "rlm_p",
]  # fmt: skip
_RESERVED = {"scan_id", "structure", "status", "volume_ml", "mean_hu", "age", "quartile"}


def check_covariates(frame: pd.DataFrame, covariates: Sequence[str]) -> None:
    """One-line error for a covariate that is not a column of the study table."""
    from difflib import get_close_matches

    reserved = sorted(set(covariates) & _RESERVED)
    if reserved:
        raise ConfigError(
            f"Expected covariates other than the measures, age and ids, got {reserved} in "
            "--adjust; name subject columns such as sex, height_cm, bmi."
        )
    available = sorted(c for c in frame.columns if c not in _RESERVED)
    for name in covariates:
        if name not in frame.columns:
            close = get_close_matches(name, available, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(
                f"Expected --adjust covariates among the table's columns {available}, got "
                f"{name!r}{hint}"
            )


def _design(scans: pd.DataFrame, covariates: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Numeric covariates (values), dummy columns of categorical ones, and the names used."""
    import pandas as pd

    numeric: dict[str, np.ndarray] = {}
    dummies: dict[str, np.ndarray] = {}
    used = []
    for name in covariates:
        column = scans[name]
        if column.nunique(dropna=True) < 2:
            continue
        used.append(name)
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            numeric[name] = column.to_numpy(dtype=float)
        else:
            text = column.astype(str).to_numpy()
            for level in sorted(set(text))[1:]:  # dummy coding against the first level
                dummies[f"{name}_{level}"] = (text == level).astype(float)
    return {"numeric": numeric, "dummies": dummies}, used


def adjusted_family(
    sub: pd.DataFrame, measure: str, covariates: Sequence[str], *, min_n: int
) -> pd.DataFrame:
    """Adjusted age effects of every structure of one stratum for one measure."""
    import pandas as pd

    columns = ["scan_id", "structure", "age", measure, *covariates]
    data = sub.loc[sub[measure].notna(), columns].dropna()
    if measure == "volume_ml":
        data = data.loc[data[measure] > 0]
    rows = []
    for structure, g in data.groupby("structure", sort=True):
        design, used = _design(g, covariates)
        base = {"structure": structure, "n": len(g), "adjusted_for": ",".join(used)}
        age = g["age"].to_numpy(dtype=float)
        values = g[measure].to_numpy(dtype=float)
        if len(g) < max(min_n, len(used) + 4) or np.ptp(age) == 0 or np.ptp(values) == 0:
            rows.append({**base, **_EMPTY, "effect_unit": _unit(measure)})
            continue
        rows.append(
            {
                **base,
                **_partial_spearman(age, values, design),
                **_robust_fit(age, values, design, log=measure == "volume_ml"),
                "effect_unit": _unit(measure),
            }
        )
    return pd.DataFrame(rows, columns=ADJUSTED_COLUMNS)


_EMPTY = {"r_s_partial": math.nan, "p": math.nan, "effect_per_decade": math.nan,
          "ci_low": math.nan, "ci_high": math.nan, "rlm_p": math.nan}  # fmt: skip


def _unit(measure: str) -> str:
    return "relative" if measure == "volume_ml" else "HU"


def _partial_spearman(
    age: np.ndarray, values: np.ndarray, design: dict[str, Any]
) -> dict[str, float]:
    from scipy import stats

    n = age.size
    z = [np.ones(n)]
    z += [stats.rankdata(v) for v in design["numeric"].values()]
    z += list(design["dummies"].values())
    basis = np.column_stack(z)

    def residual(x: np.ndarray) -> np.ndarray:
        coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
        return x - basis @ coef

    rx, ry = residual(stats.rankdata(age)), residual(stats.rankdata(values))
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if denom == 0:
        return {"r_s_partial": math.nan, "p": math.nan}
    r = float(np.clip(rx @ ry / denom, -1.0, 1.0))
    df = n - 2 - (basis.shape[1] - 1)
    t = r * math.sqrt(df / max(1e-300, 1.0 - r * r))
    return {"r_s_partial": r, "p": float(2.0 * stats.t.sf(abs(t), df))}


def _robust_fit(
    age: np.ndarray, values: np.ndarray, design: dict[str, Any], *, log: bool
) -> dict[str, float]:
    import statsmodels.api as sm

    cols = [np.ones(age.size), age / 10.0]
    cols += [v - v.mean() for v in design["numeric"].values()]
    cols += list(design["dummies"].values())
    y = np.log(values) if log else values
    fit = sm.RLM(y, np.column_stack(cols), M=sm.robust.norms.HuberT()).fit(tol=1e-6)
    b, se = float(fit.params[1]), float(fit.bse[1])
    lo, hi = b - 1.959963984540054 * se, b + 1.959963984540054 * se
    transform = math.expm1 if log else float
    return {
        "effect_per_decade": transform(b),
        "ci_low": transform(lo),
        "ci_high": transform(hi),
        "rlm_p": float(fit.pvalues[1]),
    }


def add_corrections(
    df: pd.DataFrame, *, alpha: float, fdr_q: float, p: str = "p", prefix: str = ""
) -> pd.DataFrame:
    """Bonferroni (`{prefix}p_bonferroni`, `{prefix}significant`) and Benjamini-Hochberg
    (`{prefix}p_fdr`, `{prefix}significant_fdr`) columns for the P values in column `p`."""
    from scipy import stats

    values = df[p].to_numpy(dtype=float)
    ok = ~np.isnan(values)
    n_tests = int(ok.sum())
    fdr = np.full(values.shape, math.nan)
    if n_tests:
        fdr[ok] = stats.false_discovery_control(values[ok], method="bh")
    df[f"{prefix}p_bonferroni"] = np.minimum(values * n_tests, 1.0)
    df[f"{prefix}significant"] = df[f"{prefix}p_bonferroni"] < alpha
    df[f"{prefix}p_fdr"] = fdr
    df[f"{prefix}significant_fdr"] = fdr < fdr_q
    return df
