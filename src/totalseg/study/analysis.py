"""Statistics of a study as in the paper's aging analysis (all tests from scipy.stats).

For every stratum (all scans; with `by_sex` also each sex), measure (volume_ml, mean_hu) and
structure, on the measurements kept after exclusion (`totalseg.study.exclusion`):
- normality: Kolmogorov-Smirnov test of the standardized values (mean 0, SD 1 with ddof=1)
  against N(0, 1) (`scipy.stats.kstest`); reported, it motivates the rank-based tests below;
- age trend: Spearman r_s and its two-sided P (`scipy.stats.spearmanr`);
- age quartiles: scans are cut into four age groups of equal size (quartiles of the ages of
  the stratum's scans, `pandas.qcut`); Kruskal-Wallis H test across the groups
  (`scipy.stats.kruskal`); post hoc pairwise Wilcoxon rank-sum tests of the six group pairs
  (`scipy.stats.ranksums`: the rank-sum statistic with its normal approximation, as the paper
  names it; equal to Mann-Whitney U's asymptotic test without tie and continuity correction).

Multiple testing: Bonferroni. Pairwise P values are multiplied by the number of pairs of the
structure (6); Spearman and Kruskal-Wallis P values by the number of structures tested in
their (stratum, measure) family. A result is `significant` when its Bonferroni-corrected P is
below `alpha` (default 0.0001, the paper's level); `p_lt_alpha` keeps the uncorrected
comparison, which is the paper's criterion for the correlations. Beside it, Spearman and
Kruskal-Wallis tables carry the Benjamini-Hochberg false discovery rate (`p_fdr`,
`significant_fdr`: below `fdr_q`, default 0.05).

With `adjust` (covariate columns), the `adjusted` table adds the age effects adjusted for
them: partial Spearman correlation and a robust linear model (`totalseg.study.adjusted`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from totalseg.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MEASURES", "AnalysisConfig", "AnalysisResult", "analyze_frame"]

MEASURES = ("volume_ml", "mean_hu")
REQUIRED_COLUMNS = ("scan_id", "age", "sex", "structure", "status", "volume_ml", "mean_hu")


@dataclass(frozen=True)
class AnalysisConfig:
    """Options of the analysis; see the module docstring for the tests."""

    alpha: float = 1e-4
    by_sex: bool = False
    include_incomplete: bool = False
    min_n: int = 20
    normality_alpha: float = 0.05
    measures: tuple[str, ...] = MEASURES
    # confounder adjustment (`totalseg.study.adjusted`): covariate columns; FDR level
    adjust: tuple[str, ...] = ()
    fdr_q: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"Expected 0 < alpha < 1, got {self.alpha}.")
        if not 0 < self.fdr_q < 1:
            raise ConfigError(f"Expected 0 < fdr_q < 1, got {self.fdr_q}.")
        if len(set(self.adjust)) != len(self.adjust) or "" in self.adjust:
            raise ConfigError(f"Expected distinct covariate names, got {list(self.adjust)}.")
        if self.min_n < 4:
            raise ConfigError(f"Expected min_n >= 4 (four age groups), got {self.min_n}.")
        unknown = set(self.measures) - set(MEASURES)
        if unknown:
            raise ConfigError(f"Expected measures from {MEASURES}, got {sorted(unknown)}.")


@dataclass(frozen=True)
class AnalysisResult:
    """Tidy tables of an analysis, and the kept data (with its age quartile) for figures."""

    config: AnalysisConfig
    n_scans: int
    exclusions: pd.DataFrame
    quartiles: pd.DataFrame
    normality: pd.DataFrame
    spearman: pd.DataFrame
    kruskal: pd.DataFrame
    pairwise: pd.DataFrame
    descriptive: pd.DataFrame
    data: pd.DataFrame
    adjusted: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        extra = {} if self.adjusted is None else {"adjusted": self.adjusted}
        return {
            **extra,
            "exclusions": self.exclusions,
            "quartiles": self.quartiles,
            "normality": self.normality,
            "spearman": self.spearman,
            "kruskal": self.kruskal,
            "pairwise": self.pairwise,
            "descriptive": self.descriptive,
        }


def analyze_frame(
    frame: pd.DataFrame,
    *,
    min_volumes_ml: dict[str, float],
    config: AnalysisConfig = AnalysisConfig(),
) -> AnalysisResult:
    """Run every test on a tidy scan x structure frame (columns REQUIRED_COLUMNS)."""
    import pandas as pd

    from totalseg.study.exclusion import apply_exclusions

    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"Expected a study table with columns {list(REQUIRED_COLUMNS)}, got it without "
            f"{missing}; use a study folder written by `totalseg study run`."
        )
    if config.adjust:
        from totalseg.study.adjusted import check_covariates

        check_covariates(frame, config.adjust)
    kept, exclusions = apply_exclusions(
        frame, min_volumes_ml, include_incomplete=config.include_incomplete
    )
    kept = kept.loc[kept["age"].notna()]
    if kept.empty:
        raise InputError(
            "Expected measurements with a known age after exclusion, got none; "
            "check the manifest's age column and the exclusion table."
        )
    keys = ("q", "n", "s", "k", "p", "d", "a", "data")
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in keys}
    for stratum, sub in _strata(kept, by_sex=config.by_sex):
        sub, quartiles = _with_quartiles(sub)
        parts["q"].append(quartiles.assign(stratum=stratum))
        parts["data"].append(sub.assign(stratum=stratum))
        for measure in config.measures:
            normality, spearman, kruskal, pairwise = _test_family(sub, measure, config)
            tag = {"stratum": stratum, "measure": measure}
            parts["n"].append(normality.assign(**tag))
            parts["s"].append(spearman.assign(**tag))
            parts["k"].append(kruskal.assign(**tag))
            parts["p"].append(pairwise.assign(**tag))
            parts["d"].append(_descriptive(sub, measure).assign(**tag))
            if config.adjust:
                parts["a"].append(_adjusted(sub, measure, spearman, config).assign(**tag))
    front = ["stratum", "measure", "structure"]
    cat = {k: pd.concat(v, ignore_index=True) for k, v in parts.items() if v}
    return AnalysisResult(
        config=config,
        n_scans=int(frame["scan_id"].nunique()),
        exclusions=exclusions,
        quartiles=_front(cat["q"], ["stratum"]),
        normality=_front(cat["n"], front),
        spearman=_front(cat["s"], front),
        kruskal=_front(cat["k"], front),
        pairwise=_front(cat["p"], front),
        descriptive=_front(cat["d"], front),
        data=cat["data"],
        adjusted=_front(cat["a"], front) if "a" in cat else None,
    )


def _adjusted(
    sub: pd.DataFrame, measure: str, spearman: pd.DataFrame, config: AnalysisConfig
) -> pd.DataFrame:
    """Adjusted effects beside the univariate r_s and its Bonferroni P."""
    from totalseg.study.adjusted import add_corrections, adjusted_family

    adj = adjusted_family(sub, measure, config.adjust, min_n=config.min_n)
    adj = add_corrections(adj, alpha=config.alpha, fdr_q=config.fdr_q)
    adj = add_corrections(adj, alpha=config.alpha, fdr_q=config.fdr_q, p="rlm_p", prefix="rlm_")
    uni = spearman[["structure", "r_s", "p_bonferroni", "significant"]].rename(
        columns={"p_bonferroni": "p_bonferroni_unadjusted", "significant": "significant_unadjusted"}
    )
    return adj.merge(uni, on="structure", how="left")


def _front(df: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    return df[first + [c for c in df.columns if c not in first]]


def _strata(kept: pd.DataFrame, *, by_sex: bool) -> list[tuple[str, pd.DataFrame]]:
    out = [("all", kept)]
    if by_sex:
        for sex in sorted(kept["sex"].dropna().unique()):
            out.append((str(sex), kept.loc[kept["sex"] == sex]))
    return out


def _with_quartiles(sub: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Age group Q1..Q4 of each scan (quartiles of the scans' ages), and the group table."""
    import pandas as pd

    scans = sub.drop_duplicates("scan_id")[["scan_id", "age"]]
    codes = pd.qcut(scans["age"], 4, labels=False, duplicates="drop")
    names = "Q" + (codes.astype(int) + 1).astype(str)
    by_scan = dict(zip(scans["scan_id"], names, strict=True))
    sub = sub.assign(quartile=sub["scan_id"].map(by_scan))
    table = (
        pd.DataFrame({"quartile": names.to_numpy(), "age": scans["age"].to_numpy()})
        .groupby("quartile")["age"]
        .agg(age_min="min", age_max="max", n_scans="size")
        .reset_index()
    )
    return sub, table


def _test_family(
    sub: pd.DataFrame, measure: str, config: AnalysisConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    import pandas as pd

    norm_rows: list[dict[str, Any]] = []
    sp_rows: list[dict[str, Any]] = []
    kw_rows: list[dict[str, Any]] = []
    pw_rows: list[dict[str, Any]] = []
    data = sub.loc[sub[measure].notna(), ["structure", "age", "quartile", measure]]
    for structure, g in data.groupby("structure", sort=True):
        age = g["age"].to_numpy(dtype=float)
        values = g[measure].to_numpy(dtype=float)
        enough = values.size >= config.min_n
        base = {"structure": structure, "n": int(values.size)}
        norm_rows.append({**base, **_normality(values, enough, config.normality_alpha)})
        sp_rows.append({**base, **_spearman(age, values, enough)})
        groups = {q: values[g["quartile"].to_numpy() == q] for q in sorted(g["quartile"].unique())}
        kw_rows.append({**base, **_kruskal(groups, enough)})
        pw_rows.extend({"structure": structure, **r} for r in _pairwise(groups, enough))
    spearman = _bonferroni(pd.DataFrame(sp_rows, columns=_SP_COLS), config)
    kruskal = _bonferroni(pd.DataFrame(kw_rows, columns=_KW_COLS), config)
    pairwise = pd.DataFrame(pw_rows, columns=_PW_COLS)
    pairwise["significant"] = pairwise["p_bonferroni"] < config.alpha
    return pd.DataFrame(norm_rows, columns=_KS_COLS), spearman, kruskal, pairwise


_KS_COLS = ["structure", "n", "ks_statistic", "ks_p", "normality_rejected"]
_SP_COLS = ["structure", "n", "r_s", "p"]
_KW_COLS = ["structure", "n", "n_groups", "h", "p"]
_PW_COLS = [
    "structure",
    "group_a",
    "group_b",
    "n_a",
    "n_b",
    "median_a",
    "median_b",
    "statistic",
    "p",
    "n_pairs",
    "p_bonferroni",
]


def _varies(values: np.ndarray) -> bool:
    return values.size > 1 and bool(np.ptp(values) > 0)


def _normality(values: np.ndarray, enough: bool, normality_alpha: float) -> dict[str, Any]:
    from scipy import stats

    if not (enough and _varies(values)):
        return {"ks_statistic": math.nan, "ks_p": math.nan, "normality_rejected": False}
    z = (values - values.mean()) / values.std(ddof=1)
    res = stats.kstest(z, "norm")
    return {
        "ks_statistic": float(res.statistic),
        "ks_p": float(res.pvalue),
        "normality_rejected": bool(res.pvalue < normality_alpha),
    }


def _spearman(age: np.ndarray, values: np.ndarray, enough: bool) -> dict[str, float]:
    from scipy import stats

    if not (enough and _varies(values) and _varies(age)):
        return {"r_s": math.nan, "p": math.nan}
    res = stats.spearmanr(age, values)
    return {"r_s": float(res.statistic), "p": float(res.pvalue)}


def _kruskal(groups: dict[str, np.ndarray], enough: bool) -> dict[str, float]:
    from scipy import stats

    usable = [v for v in groups.values() if v.size > 0]
    pooled = np.concatenate(usable) if usable else np.empty(0)
    if not (enough and len(usable) >= 2 and _varies(pooled)):
        return {"n_groups": len(usable), "h": math.nan, "p": math.nan}
    res = stats.kruskal(*usable)
    return {"n_groups": len(usable), "h": float(res.statistic), "p": float(res.pvalue)}


def _pairwise(groups: dict[str, np.ndarray], enough: bool) -> list[dict[str, Any]]:
    from scipy import stats

    pairs = list(itertools.combinations(sorted(groups), 2))
    rows = []
    for a, b in pairs:
        va, vb = groups[a], groups[b]
        ok = enough and va.size >= 3 and vb.size >= 3
        res = stats.ranksums(va, vb) if ok else None
        p = float(res.pvalue) if res is not None else math.nan
        rows.append(
            {
                "group_a": a,
                "group_b": b,
                "n_a": int(va.size),
                "n_b": int(vb.size),
                "median_a": float(np.median(va)) if va.size else math.nan,
                "median_b": float(np.median(vb)) if vb.size else math.nan,
                "statistic": float(res.statistic) if res is not None else math.nan,
                "p": p,
                "n_pairs": len(pairs),
                "p_bonferroni": min(1.0, p * len(pairs)) if res is not None else math.nan,
            }
        )
    return rows


def _bonferroni(df: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    """Add n_tests, p_bonferroni, significant (corrected), p_lt_alpha (uncorrected) and the
    Benjamini-Hochberg p_fdr, significant_fdr."""
    from totalseg.study.adjusted import add_corrections

    alpha = config.alpha
    n_tests = int(df["p"].notna().sum())
    df["n_tests"] = n_tests
    df["p_bonferroni"] = (df["p"] * n_tests).clip(upper=1.0)
    df["significant"] = df["p_bonferroni"] < alpha
    df["p_lt_alpha"] = df["p"] < alpha
    fdr = add_corrections(df[["p"]].copy(), alpha=alpha, fdr_q=config.fdr_q)
    df["p_fdr"] = fdr["p_fdr"]
    df["significant_fdr"] = fdr["significant_fdr"]
    return df


def _descriptive(sub: pd.DataFrame, measure: str) -> pd.DataFrame:
    """n, median, first and third quartile of the measure per structure and age group."""
    g = sub.loc[sub[measure].notna()].groupby(["structure", "quartile"])[measure]
    out = g.agg(n="size", median="median")
    out["q1"] = g.quantile(0.25)
    out["q3"] = g.quantile(0.75)
    return out.reset_index()
