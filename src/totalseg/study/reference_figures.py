"""Percentile fans of a reference (growth-chart style; matplotlib Agg canvas, PNG bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from totalseg.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["fan_figure", "fan_structures"]

_SEX = {"F": ("Female", "#c2185b"), "M": ("Male", "#1565c0")}
_BANDS = (("p2_5", "p97_5", 0.15), ("p10", "p90", 0.25), ("p25", "p75", 0.35))


def fan_structures(
    table: pd.DataFrame, measure: str, structures: Sequence[str] | None, max_figures: int
) -> list[str]:
    """The given structures (checked), or those whose median changes most over age."""
    rows = table.loc[table["measure"] == measure]
    if structures:
        unknown = sorted(set(structures) - set(rows["structure"]))
        if unknown:
            raise InputError(
                f"Expected structures of the reference for figures, got {unknown}; "
                f"it has {rows['structure'].nunique()} structures (see reference.csv)."
            )
        return list(structures)
    change = rows.groupby(["structure", "sex"]).apply(
        lambda g: abs(g["location"].iloc[-1] - g["location"].iloc[0]) / g["scale"].mean(),
        include_groups=False,
    )
    ranked = change.groupby(level="structure").max().sort_values(ascending=False)
    return [str(s) for s in ranked.index[:max_figures]]


def fan_figure(frame: pd.DataFrame, table: pd.DataFrame, structure: str, measure: str) -> bytes:
    """One panel per sex: measurements (dots) under the 2.5-97.5, 10-90, 25-75 % fans and
    the median curve."""
    from totalseg.study.figures import UNITS, _new_figure, _png

    curves = table.loc[(table["structure"] == structure) & (table["measure"] == measure)]
    data = frame.loc[(frame["structure"] == structure) & frame[measure].notna()]
    sexes = [s for s in ("F", "M") if s in set(curves["sex"])]
    fig = _new_figure(4.6 * max(1, len(sexes)), 3.4)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(sexes)), sharey=True))
    for ax, sex in zip(axes, sexes, strict=False):
        name, color = _SEX[sex]
        c = curves.loc[curves["sex"] == sex].sort_values("age")
        d = data.loc[data["sex"] == sex]
        ax.scatter(d["age"], d[measure], s=4, alpha=0.25, color="#455a64", rasterized=True)
        for lo, hi, alpha in _BANDS:
            ax.fill_between(c["age"], c[lo], c[hi], color=color, alpha=alpha, linewidth=0)
        ax.plot(c["age"], c["p50"], color=color, linewidth=2)
        ax.set_title(f"{structure}, {name} (n = {int(c['n_sex'].iloc[0])})", fontsize=10)
        ax.set_xlabel("Age (years)")
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(UNITS.get(measure, measure))
    return _png(fig)
