"""Figures in the style of the paper's Fig. 6 (matplotlib, Agg canvas, PNG bytes).

Per structure and measure: a scatter plot of the measure against age with a least-squares trend
line, beside box plots per age quartile (whiskers at 1.5 IQR, outliers hidden). An overview
plots Spearman r_s of every structure. Figures are drawn on a `Figure` with an Agg canvas, never
through pyplot's global state, so they are safe in servers and threads.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["overview_figure", "structure_figure"]

UNITS = {"volume_ml": "Volume (ml)", "mean_hu": "Mean attenuation (HU)"}
_SEX_COLORS = {"F": "#c2185b", "M": "#1565c0"}


def _new_figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _p_text(p: float) -> str:
    if math.isnan(p):
        return "P n/a"
    return "P < .001" if p < 0.001 else f"P = {p:.3f}".replace("0.", ".")


def structure_figure(
    data: pd.DataFrame,
    structure: str,
    measure: str,
    *,
    r_s: float,
    p: float,
    quartiles: pd.DataFrame,
    color_by_sex: bool = False,
) -> bytes:
    """Scatter (age vs measure, trend line) and quartile box plots of one structure, as PNG."""
    rows = data.loc[(data["structure"] == structure) & data[measure].notna()]
    age = rows["age"].to_numpy(dtype=float)
    values = rows[measure].to_numpy(dtype=float)
    fig = _new_figure(9.0, 3.4)
    ax_scatter, ax_box = fig.subplots(1, 2, width_ratios=[1.3, 1.0])
    if color_by_sex:
        for sex, color in _SEX_COLORS.items():
            sel = (rows["sex"] == sex).to_numpy()
            ax_scatter.scatter(age[sel], values[sel], s=5, alpha=0.35, color=color, label=sex)
        ax_scatter.legend(loc="best", fontsize=8, markerscale=2, frameon=False)
    else:
        ax_scatter.scatter(age, values, s=5, alpha=0.35, color="#37474f", rasterized=True)
    if age.size >= 2 and np.ptp(age) > 0:
        slope, intercept = np.polyfit(age, values, 1)
        xs = np.array([age.min(), age.max()])
        ax_scatter.plot(xs, intercept + slope * xs, color="#d32f2f", linewidth=2)
    ax_scatter.set_xlabel("Age (years)")
    ax_scatter.set_ylabel(UNITS.get(measure, measure))
    ax_scatter.set_title(f"{structure}: r_s = {r_s:.2f}, {_p_text(p)} (uncorrected)", fontsize=10)
    order = sorted(rows["quartile"].dropna().unique())
    groups = [values[(rows["quartile"] == q).to_numpy()] for q in order]
    ranges = {
        str(q): (float(lo), float(hi))
        for q, lo, hi in quartiles[["quartile", "age_min", "age_max"]].itertuples(index=False)
    }
    labels = [f"{q}\n{ranges[q][0]:.0f}-{ranges[q][1]:.0f} y" if q in ranges else q for q in order]
    ax_box.boxplot(groups, whis=1.5, showfliers=False, widths=0.6)
    ax_box.set_xticks(range(1, len(order) + 1), labels, fontsize=8)
    ax_box.set_xlabel("Age quartile")
    ax_box.set_ylabel(UNITS.get(measure, measure))
    for ax in (ax_scatter, ax_box):
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def overview_figure(spearman: pd.DataFrame, measure: str, *, alpha: float) -> bytes:
    """Horizontal bars of Spearman r_s (age vs measure) of every tested structure, as PNG."""
    rows = spearman.loc[spearman["r_s"].notna()].sort_values("r_s")
    n = max(1, len(rows))
    fig = _new_figure(7.5, 1.2 + 0.14 * n)
    ax = fig.subplots()
    colors = np.where(rows["significant"].to_numpy(dtype=bool), "#d32f2f", "#90a4ae")
    ax.barh(np.arange(len(rows)), rows["r_s"].to_numpy(dtype=float), color=colors, height=0.75)
    ax.set_yticks(np.arange(len(rows)), rows["structure"].tolist(), fontsize=6)
    ax.set_ylim(-0.8, len(rows) - 0.2)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"Spearman r_s, age vs {UNITS.get(measure, measure).lower()}")
    ax.set_title(
        f"Red: significant after Bonferroni correction (P < {alpha:g}); grey: not significant",
        fontsize=9,
    )
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)
