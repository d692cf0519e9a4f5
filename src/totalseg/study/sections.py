"""Report sections beyond the paper's univariate analysis: adjusted effects, reference fans."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from totalseg.study.analysis import AnalysisResult

__all__ = ["adjusted_section", "fans_section"]

_SHOWN = [
    "stratum", "structure", "n", "r_s", "p_bonferroni_unadjusted", "r_s_partial",
    "p_bonferroni", "p_fdr", "effect_per_decade", "ci_low", "ci_high", "rlm_p_bonferroni",
    "rlm_p_fdr", "significant",
]  # fmt: skip


def adjusted_section(result: AnalysisResult, measure: str) -> str:
    """The adjusted table of one measure: every structure significant before or after."""
    from totalseg.study.figures import UNITS
    from totalseg.study.report import _table_html

    if result.adjusted is None:
        return ""
    cfg = result.config
    adj = result.adjusted.loc[result.adjusted["measure"] == measure]
    shown = adj.loc[adj["significant"] | adj["significant_unadjusted"] | adj["rlm_significant"]]
    shown = shown.sort_values(
        ["stratum", "significant", "structure"], ascending=[True, False, True]
    )
    columns = [c for c in _SHOWN if cfg.by_sex or c != "stratum"]
    unit = "relative change (exp(b) - 1)" if measure == "volume_ml" else "HU"
    n_adj, n_uni = int(adj["significant"].sum()), int(adj["significant_unadjusted"].sum())
    out = [
        f"<h3>Adjusted age effects: {html.escape(UNITS.get(measure, measure))}</h3>",
        f"<p>Adjusted for {html.escape(', '.join(cfg.adjust))}: {n_adj} significant partial "
        f"Spearman correlations (Bonferroni P &lt; {cfg.alpha:g}) against {n_uni} "
        f"unadjusted; {int(adj['significant_fdr'].sum())} at a Benjamini-Hochberg false "
        f"discovery rate of {cfg.fdr_q:g}. Robust linear model (Huber): effect per decade in "
        f"{unit} with its 95 % confidence interval. Rows: structures significant before or "
        "after adjustment (highlighted: significant after adjustment); all rows in "
        "adjusted.csv.</p>",
        f"<div style='overflow-x:auto'>{_table_html(shown[columns])}</div>"
        if len(shown)
        else "<p><em>None significant.</em></p>",
        f"<details><summary>adjusted.csv ({html.escape(measure)})</summary>",
        f"<div style='overflow-x:auto'>{_table_html(adj.drop(columns='measure'))}</div>",
        "</details>",
    ]
    return "\n".join(out)


def fans_section(fans: dict[str, bytes]) -> str:
    """Percentile fans of a reference (`totalseg study reference`), inline PNG."""
    from totalseg.study.report import _img

    if not fans:
        return ""
    out = [
        "<h2>Reference percentiles by age and sex</h2>",
        "<p>Percentile curves (2.5, 10, 25, 50, 75, 90, 97.5 %) of the reference table, per "
        "sex, over the measurements (dots); see reference.csv for the values and the sample "
        "size per age band.</p>",
    ]
    out += [_img(png, name) for name, png in sorted(fans.items())]
    return "\n".join(out)
