"""Bootstrap CIs (vs scipy.stats.bootstrap), Wilcoxon (vs scipy.stats.wilcoxon), P formatting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from totalseg.errors import InputError
from totalseg.metrics import (
    MeanCI,
    bootstrap_macro_mean_ci,
    bootstrap_matrix,
    bootstrap_mean_ci,
    format_p,
    wilcoxon_test,
)
from totalseg.metrics import statistics as stats_module


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(0).beta(9, 1, size=40),  # Dice-like, skewed
        np.random.default_rng(1).normal(3.0, 2.0, size=15),
        np.random.default_rng(2).exponential(1.0, size=120),
    ],
    ids=["dice-like", "normal-15", "exponential-120"],
)
def test_bootstrap_ci_agrees_with_scipy_percentile(values):
    ours = bootstrap_mean_ci(values, n_resamples=10_000, seed=1)
    ref = stats.bootstrap(
        (values,), np.mean, n_resamples=10_000, method="percentile", random_state=7
    ).confidence_interval
    width = ref.high - ref.low
    # Monte-Carlo error of a 2.5 % quantile from 10,000 resamples is ~1 % of the CI width.
    assert ours.low == pytest.approx(ref.low, abs=0.05 * width)
    assert ours.high == pytest.approx(ref.high, abs=0.05 * width)
    assert ours.mean == pytest.approx(values.mean())
    assert ours.n == len(values)


def test_bootstrap_equals_explicit_resampling():
    """Same draws as an explicit index matrix: the vectorized counts are exact."""
    x = np.random.default_rng(4).normal(size=25)
    ours = bootstrap_mean_ci(x, n_resamples=2000, seed=11)
    idx = np.random.default_rng(11).integers(0, x.size, size=(2000, x.size))
    means = x[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    assert (ours.low, ours.high) == pytest.approx((low, high), rel=1e-12)


def test_bootstrap_is_seeded_and_block_size_invariant(monkeypatch):
    x = np.random.default_rng(5).normal(size=50)
    first = bootstrap_mean_ci(x, seed=3)
    assert bootstrap_mean_ci(x, seed=3) == first
    assert bootstrap_mean_ci(x, seed=4) != first
    monkeypatch.setattr(stats_module, "_MAX_BLOCK_ENTRIES", 50 * 7)  # blocks of 7 resamples
    blocked = bootstrap_mean_ci(x, seed=3)
    assert (blocked.low, blocked.high) == pytest.approx((first.low, first.high), rel=1e-12)


def test_bootstrap_drops_nan_and_handles_tiny_inputs():
    ci = bootstrap_mean_ci([0.5, np.nan, 0.7, np.nan, 0.9])
    assert ci.n == 3 and ci.mean == pytest.approx(0.7)
    assert 0.5 <= ci.low <= ci.high <= 0.9
    one = bootstrap_mean_ci([0.8])
    assert (one.mean, one.low, one.high, one.n) == (0.8, 0.8, 0.8, 1)
    none = bootstrap_mean_ci([np.nan])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.low)


def test_bootstrap_matrix_columns_and_macro():
    rng = np.random.default_rng(6)
    m = rng.beta(8, 2, size=(30, 4))
    m[rng.random(m.shape) < 0.2] = np.nan
    m[:, 3] = np.nan  # a structure never present: left out of the macro mean
    summary = bootstrap_matrix(m, seed=2)
    col_means = [np.nanmean(m[:, j]) for j in range(3)]
    for j in range(3):
        assert summary.columns[j].mean == pytest.approx(col_means[j])
        assert summary.columns[j].n == int((~np.isnan(m[:, j])).sum())
        assert summary.columns[j].low < col_means[j] < summary.columns[j].high
    assert summary.columns[3].n == 0 and math.isnan(summary.columns[3].mean)
    assert summary.macro.mean == pytest.approx(np.mean(col_means))
    assert summary.macro.low < summary.macro.mean < summary.macro.high
    assert bootstrap_macro_mean_ci(m, seed=2) == summary.macro
    # A column without NaN gets exactly the plain bootstrap of its values (same seed).
    full = rng.normal(size=(20, 2))
    col, plain = bootstrap_matrix(full, seed=9).columns[1], bootstrap_mean_ci(full[:, 1], seed=9)
    assert (col.mean, col.low, col.high) == pytest.approx((plain.mean, plain.low, plain.high))


def test_bootstrap_errors():
    with pytest.raises(InputError, match="n_resamples >= 1"):
        bootstrap_mean_ci([1.0, 2.0], n_resamples=0)
    with pytest.raises(InputError, match=r"confidence level in \(0, 1\)"):
        bootstrap_mean_ci([1.0, 2.0], confidence=95)
    with pytest.raises(InputError, match="cases, structures"):
        bootstrap_matrix(np.zeros(3))


@pytest.mark.parametrize("n", [6, 12, 30, 80])
def test_wilcoxon_equals_scipy(n):
    rng = np.random.default_rng(n)
    a = rng.beta(9, 1, size=n)
    b = np.clip(a - rng.normal(0.02, 0.03, size=n), 0, 1)
    b[:2] = a[:2]  # zero differences are dropped ("wilcox" zero method), like scipy
    a[2], b[2] = 0.5, 0.25  # ties in |difference|
    a[3], b[3] = 0.75, 0.5
    ours = wilcoxon_test(a, b)
    ref = stats.wilcoxon(a, b)
    assert ours.p_value == ref.pvalue
    assert ours.statistic == ref.statistic
    assert ours.n == n and ours.n_dropped == 0


def test_wilcoxon_drops_nan_pairs_and_identical_values():
    a = np.array([0.9, 0.8, np.nan, 0.7, 0.95, 0.85, 0.6, 0.99])
    b = np.array([0.8, 0.7, 0.5, np.nan, 0.9, 0.8, 0.55, 0.91])
    ours = wilcoxon_test(a, b)
    keep = ~(np.isnan(a) | np.isnan(b))
    assert ours.p_value == stats.wilcoxon(a[keep], b[keep]).pvalue
    assert (ours.n, ours.n_dropped) == (6, 2)
    same = wilcoxon_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])  # scipy: P = 1 with a warning
    assert same.p_value == 1.0
    assert math.isnan(wilcoxon_test([np.nan], [0.3]).p_value)
    with pytest.raises(InputError, match="equal length"):
        wilcoxon_test([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.0000001, "P < .001"),
        (0.0009999, "P < .001"),
        (0.001, "P = .001"),
        (0.0034, "P = .003"),
        (0.03, "P = .03"),
        (0.0449, "P = .04"),
        (0.5, "P = .50"),
        (0.991, "P > .99"),
        (1.0, "P > .99"),
        (float("nan"), "P = n/a"),
    ],
)
def test_format_p_radiology_style(p, text):
    assert format_p(p) == text


def test_format_p_rejects_out_of_range():
    with pytest.raises(InputError, match=r"P value in \[0, 1\]"):
        format_p(1.5)


def test_mean_ci_format():
    ci = MeanCI(0.9321, 0.9204, 0.9419, 10)
    assert ci.format() == "0.932 (95% CI: 0.920, 0.942)"
    assert ci.format(label_ci=False) == "0.932 (0.920, 0.942)"
