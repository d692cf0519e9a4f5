"""Means with bootstrap confidence intervals, paired Wilcoxon tests and P-value formatting.

The bootstrap is the nonparametric percentile bootstrap over cases (the paper: 10,000
resamples). It is vectorized: each block of resamples is a matrix of how often every case is
drawn, so a block of means is one matrix product; blocks keep memory bounded for any number of
cases. Results depend only on the values, `n_resamples`, `confidence` and `seed`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from totalseg.errors import InputError

__all__ = [
    "MatrixSummary",
    "MeanCI",
    "PairedTest",
    "bootstrap_macro_mean_ci",
    "bootstrap_matrix",
    "bootstrap_mean_ci",
    "format_p",
    "wilcoxon_test",
]

_MAX_BLOCK_ENTRIES = 1 << 22  # resample-count matrix entries per block (32 MiB of float64)


@dataclass(frozen=True)
class MeanCI:
    """A mean and its bootstrap confidence interval; `n` values (cases) went into the mean."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    def format(self, *, digits: int = 3, label_ci: bool = True) -> str:
        """'0.932 (95% CI: 0.920, 0.942)', or '0.932 (0.920, 0.942)' without the label."""
        f = f"{{:.{digits}f}}"
        prefix = f"{round(self.confidence * 100):d}% CI: " if label_ci else ""
        return f"{f.format(self.mean)} ({prefix}{f.format(self.low)}, {f.format(self.high)})"


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of paired values (pairs with a NaN are dropped and counted)."""

    statistic: float
    p_value: float
    n: int
    n_dropped: int


def _check_resampling(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise InputError(f"Expected n_resamples >= 1, got {n_resamples}.")
    if not 0 < confidence < 1:
        raise InputError(f"Expected a confidence level in (0, 1), got {confidence}.")


def _resample_counts(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks (b, n) of how many times each of n cases is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    block = max(1, min(n_resamples, _MAX_BLOCK_ENTRIES // max(n, 1)))
    done = 0
    while done < n_resamples:
        b = min(block, n_resamples - done)
        draws = rng.integers(0, n, size=(b, n))
        draws += (np.arange(b) * n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)
        yield counts.astype(np.float64)
        done += b


def _percentile_ci(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(stats, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return (float(low), float(high))


@dataclass(frozen=True)
class MatrixSummary:
    """Bootstrap summary of a (cases, structures) matrix: each column, and their macro mean."""

    columns: tuple[MeanCI, ...]
    macro: MeanCI


def _column_means(counts: np.ndarray, filled: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per-column weighted means (NaN where a column got no value), one row per weight row."""
    sums = counts @ filled
    ns = counts @ present
    out = np.full_like(sums, np.nan)
    np.divide(sums, ns, out=out, where=ns > 0)
    return out


def _macro(column_means: np.ndarray) -> np.ndarray:
    have = ~np.isnan(column_means)
    n = have.sum(axis=1)
    total = np.where(have, column_means, 0.0).sum(axis=1)
    out = np.full(total.shape, np.nan)
    np.divide(total, n, out=out, where=n > 0)
    return out


def bootstrap_matrix(
    matrix: npt.ArrayLike,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MatrixSummary:
    """Means with bootstrap CIs of every column of a (cases, structures) matrix and of their mean.

    NaN entries are excluded. Every resample draws whole cases (rows), so all columns and the
    macro mean (mean over columns of the column means, columns without values left out) share
    the same resamples and keep the correlation between the structures of one patient. For a
    column without NaN this is exactly the plain percentile bootstrap of its mean.
    """
    _check_resampling(n_resamples, confidence)
    v = np.asarray(matrix, dtype=np.float64)
    if v.ndim != 2:
        raise InputError(f"Expected a (cases, structures) matrix, got shape {v.shape}.")
    present = (~np.isnan(v)).astype(np.float64)
    filled = np.where(np.isnan(v), 0.0, v)
    n_cases, n_cols = v.shape
    nan = float("nan")
    if n_cases == 0 or not present.any():
        empty = MeanCI(nan, nan, nan, 0, confidence)
        return MatrixSummary(tuple(empty for _ in range(n_cols)), empty)
    point = _column_means(np.ones((1, n_cases)), filled, present)
    blocks = [
        _column_means(c, filled, present) for c in _resample_counts(n_cases, n_resamples, seed)
    ]
    stats = np.concatenate(blocks)
    n_per_col = present.sum(axis=0).astype(int)
    columns = []
    for j in range(n_cols):
        low, high = _percentile_ci(stats[:, j], confidence) if n_per_col[j] else (nan, nan)
        columns.append(MeanCI(float(point[0, j]), low, high, int(n_per_col[j]), confidence))
    low, high = _percentile_ci(_macro(stats), confidence)
    n_used = int((present.sum(axis=1) > 0).sum())
    macro = MeanCI(float(_macro(point)[0]), low, high, n_used, confidence)
    return MatrixSummary(tuple(columns), macro)


def bootstrap_mean_ci(
    values: npt.ArrayLike,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MeanCI:
    """Mean of the non-NaN values with a percentile-bootstrap confidence interval."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    summary = bootstrap_matrix(
        x[:, None], n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return summary.columns[0] if summary.columns else summary.macro


def bootstrap_macro_mean_ci(
    matrix: npt.ArrayLike,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MeanCI:
    """Mean over structures of per-structure means of a (cases, structures) matrix, with CI."""
    return bootstrap_matrix(matrix, n_resamples=n_resamples, confidence=confidence, seed=seed).macro


def wilcoxon_test(a: npt.ArrayLike, b: npt.ArrayLike) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of paired values (`scipy.stats.wilcoxon` defaults).

    Pairs with a NaN on either side are dropped. When every difference is zero the test has
    nothing to rank; scipy then returns P = 1 with a warning, which is returned here without one.
    """
    from scipy import stats

    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(
            f"Expected paired values of equal length, got {x.size} and {y.size}; "
            "compare the two models on the same cases."
        )
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n_dropped = int((~keep).sum())
    if x.size == 0:
        return PairedTest(float("nan"), float("nan"), 0, n_dropped)
    if np.all(x == y):
        return PairedTest(0.0, 1.0, int(x.size), n_dropped)
    result = stats.wilcoxon(x, y)
    return PairedTest(float(result.statistic), float(result.pvalue), int(x.size), n_dropped)


def format_p(p: float) -> str:
    """P value in Radiology style: 'P < .001', 'P = .003' (below .01), 'P = .03', 'P > .99'."""
    if not np.isfinite(p):
        return "P = n/a"
    if p < 0 or p > 1:
        raise InputError(f"Expected a P value in [0, 1], got {p}.")
    if p < 0.001:
        return "P < .001"
    if p > 0.99:
        return "P > .99"
    text = f"{p:.3f}" if p < 0.01 else f"{p:.2f}"
    return "P = " + text.lstrip("0")
