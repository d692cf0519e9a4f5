"""Paired comparison of two models evaluated on the same cases, in the paper's form.

Overall: the mean over structures of per-structure means (NaN excluded) with a case-bootstrap
CI for each model (both use the same resamples), and a two-sided Wilcoxon signed-rank test of
the per-case means (mean over the case's evaluated structures) between the models. Per
structure: means with CIs and a Wilcoxon test over the cases where both values exist.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.anatomy import resolve_names
from totalseg.errors import InputError
from totalseg.metrics.statistics import (
    MeanCI,
    PairedTest,
    bootstrap_matrix,
    format_p,
    wilcoxon_test,
)
from totalseg.metrics.tables import Row, metric_matrix

__all__ = [
    "Comparison",
    "MetricComparison",
    "compare_tables",
    "comparison_lines",
    "comparison_records",
    "plot_comparison",
]

METRIC_LABELS = {
    "dice": "Dice",
    "nsd": "NSD",
    "hd95_mm": "HD95 (mm)",
    "assd_mm": "ASSD (mm)",
    "volume_diff_ml": "Volume difference (ml)",
    "volume_diff_rel": "Relative volume difference",
}


@dataclass(frozen=True)
class MetricComparison:
    """Model A vs model B on one metric, for one structure or overall."""

    structure: str
    metric: str
    a: MeanCI
    b: MeanCI
    test: PairedTest


@dataclass(frozen=True)
class Comparison:
    names: tuple[str, str]
    cases: tuple[str, ...]
    structures: tuple[str, ...]
    overall: tuple[MetricComparison, ...]
    per_structure: tuple[MetricComparison, ...]


def _case_means(matrix: np.ndarray) -> np.ndarray:
    have = ~np.isnan(matrix)
    n = have.sum(axis=1)
    total = np.where(have, matrix, 0.0).sum(axis=1)
    out = np.full(total.shape, np.nan)
    np.divide(total, n, out=out, where=n > 0)
    return out


def _common(rows_a: Sequence[Row], rows_b: Sequence[Row], index: int) -> list[str]:
    in_b = {str(r[index]) for r in rows_b}
    return [x for x in dict.fromkeys(str(r[index]) for r in rows_a) if x in in_b]


def _structures(
    requested: Sequence[str] | None, common: list[str], names: tuple[str, str]
) -> list[str]:
    if not requested:
        return common
    wanted = resolve_names(requested)
    missing = [s for s in wanted if s not in common]
    if missing:
        raise InputError(
            f"Expected both results ({names[0]}, {names[1]}) to hold {', '.join(missing[:5])}, "
            f"got {len(common)} common structures without {'them' if len(missing) > 1 else 'it'}; "
            "choose other structures or re-run the evaluation with them."
        )
    return wanted


def compare_tables(
    rows_a: Sequence[Row],
    rows_b: Sequence[Row],
    *,
    names: tuple[str, str] = ("A", "B"),
    structures: Sequence[str] | None = None,
    metrics: Sequence[str] = ("dice", "nsd"),
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare two tidy result tables on their common cases (paired)."""
    cases = sorted(_common(rows_a, rows_b, 0))
    if not cases:
        raise InputError(
            f"Expected results of {names[0]} and {names[1]} on the same cases, got no case in "
            "common; evaluate both models on the same reference dataset."
        )
    chosen = _structures(structures, _common(rows_a, rows_b, 1), names)
    have_metrics = set(_common(rows_a, rows_b, 2))
    overall, per_structure = [], []
    for metric in metrics:
        if metric not in have_metrics:
            raise InputError(
                f"Expected metric {metric!r} in both results, got only "
                f"{', '.join(sorted(have_metrics)) or 'none'}."
            )
        ma = metric_matrix(rows_a, metric, cases, chosen)
        mb = metric_matrix(rows_b, metric, cases, chosen)
        opts: dict[str, Any] = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
        sa, sb = bootstrap_matrix(ma, **opts), bootstrap_matrix(mb, **opts)
        test = wilcoxon_test(_case_means(ma), _case_means(mb))
        overall.append(MetricComparison("overall", metric, sa.macro, sb.macro, test))
        for j, name in enumerate(chosen):
            per_structure.append(
                MetricComparison(
                    name, metric, sa.columns[j], sb.columns[j], wilcoxon_test(ma[:, j], mb[:, j])
                )
            )
    return Comparison(names, tuple(cases), tuple(chosen), tuple(overall), tuple(per_structure))


def comparison_lines(comparison: Comparison) -> list[str]:
    """'Dice 0.932 (95% CI: 0.920, 0.942) vs 0.871 (0.855, 0.887); P < .001' per metric."""
    return [
        f"{METRIC_LABELS.get(c.metric, c.metric)} {c.a.format()} vs "
        f"{c.b.format(label_ci=False)}; {format_p(c.test.p_value)}"
        for c in comparison.overall
    ]


def comparison_records(comparison: Comparison) -> list[dict[str, Any]]:
    """One record per (structure or 'overall', metric), for the comparison table."""
    out = []
    for c in (*comparison.overall, *comparison.per_structure):
        out.append(
            {
                "structure": c.structure,
                "metric": c.metric,
                "n_pairs": c.test.n,
                "mean_a": c.a.mean,
                "ci_low_a": c.a.low,
                "ci_high_a": c.a.high,
                "mean_b": c.b.mean,
                "ci_low_b": c.b.low,
                "ci_high_b": c.b.high,
                "difference": c.a.mean - c.b.mean,
                "wilcoxon_statistic": c.test.statistic,
                "p_value": c.test.p_value,
                "p_text": format_p(c.test.p_value),
            }
        )
    return out


def plot_comparison(comparison: Comparison, path: str | os.PathLike[str]) -> Path:
    """Per-structure means with CIs of both models, one panel per metric (PNG, matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    metrics = [c.metric for c in comparison.overall]
    n = len(comparison.structures)
    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(4.5 * len(metrics) + 1.5, max(3.0, 0.22 * n + 1.4)),
        sharey=True,
        squeeze=False,
    )
    y = np.arange(n)
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = [c for c in comparison.per_structure if c.metric == metric]
        for offset, side, name, color in (
            (-0.18, "a", comparison.names[0], "tab:blue"),
            (0.18, "b", comparison.names[1], "tab:orange"),
        ):
            stats = [getattr(c, side) for c in rows]
            mean = np.array([s.mean for s in stats])
            low = [s.mean - s.low for s in stats]
            high = [s.high - s.mean for s in stats]
            err = np.abs(np.array([low, high]))
            ax.errorbar(mean, y + offset, xerr=err, fmt="o", ms=3, lw=1, color=color, label=name)
        ax.set_title(METRIC_LABELS.get(metric, metric))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y)
    axes[0][0].set_yticklabels(comparison.structures, fontsize=7)
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"{comparison.names[0]} vs {comparison.names[1]} ({len(comparison.cases)} cases)")
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, target)
    return target
