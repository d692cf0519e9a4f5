"""`analyze_study`: study table -> tidy CSV tables, figures and one self-contained HTML report.

The report embeds its figures as base64 PNG and its style inline; it loads nothing from the
network or the disk, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np

from totalseg.errors import InputError
from totalseg.stats.formats import atomic_write_bytes, atomic_write_text
from totalseg.study.analysis import AnalysisConfig, AnalysisResult, analyze_frame
from totalseg.study.exclusion import load_min_volumes
from totalseg.study.table import load_study_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["analyze_study", "load_study_table", "render_html"]


def analyze_study(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: AnalysisConfig | None = None,
    min_volumes: str | os.PathLike[str] | None = None,
    max_figures: int = 12,
    reference: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> AnalysisResult:
    """Analyze a study; write `<table>.csv`, `figures/*.png` and `report.html` to `out_dir`.

    `reference`: a folder of `totalseg study reference`; its percentile fans join the report.
    """
    out = Path(out_dir)
    say = progress or (lambda _msg: None)
    say("loading the study table")
    frame = load_study_table(source)
    bounds = load_min_volumes(min_volumes)
    say(f"testing {frame['structure'].nunique()} structures of {frame['scan_id'].nunique()} scans")
    result = analyze_frame(frame, min_volumes_ml=bounds, config=config or AnalysisConfig())
    for name, table in result.tables().items():
        atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))
    say("drawing figures")
    figures = _figures(result, max_figures)
    for name, png in figures.items():
        atomic_write_bytes(out / "figures" / f"{name}.png", png)
    for stale in (out / "figures").glob("*.png"):  # figures of an earlier analysis
        if stale.stem not in figures:
            stale.unlink()
    say("writing the report")
    fans = {} if reference is None else _fans(Path(reference))
    page = render_html(result, figures, source=str(source), fans=fans)
    atomic_write_text(out / "report.html", page)
    return result


def _fans(folder: Path) -> dict[str, bytes]:
    found = sorted((folder / "figures").glob("fan_*.png"))
    if not found:
        raise InputError(
            f"Expected percentile fans (figures/fan_*.png) in the reference folder '{folder}', "
            "got none; write it with `totalseg study reference`."
        )
    return {p.stem: p.read_bytes() for p in found}


def _top_structures(result: AnalysisResult, measure: str, n: int) -> pd.DataFrame:
    sp = result.spearman
    rows = sp.loc[(sp["stratum"] == "all") & (sp["measure"] == measure) & sp["r_s"].notna()]
    rows = rows.assign(abs_r=rows["r_s"].abs())
    return rows.sort_values(["significant", "abs_r"], ascending=[False, False]).head(n)


def _figures(result: AnalysisResult, max_figures: int) -> dict[str, bytes]:
    from totalseg.study.figures import overview_figure, structure_figure

    figures = {}
    data = result.data.loc[result.data["stratum"] == "all"]
    quartiles = result.quartiles.loc[result.quartiles["stratum"] == "all"]
    for measure in result.config.measures:
        sp = result.spearman
        family = sp.loc[(sp["stratum"] == "all") & (sp["measure"] == measure)]
        figures[f"overview_{measure}"] = overview_figure(family, measure, alpha=result.config.alpha)
        for row in _top_structures(result, measure, max_figures).itertuples():
            figures[f"{measure}_{row.structure}"] = structure_figure(
                data,
                str(row.structure),
                measure,
                r_s=float(row.r_s),
                p=float(row.p),
                quartiles=quartiles,
                color_by_sex=result.config.by_sex,
            )
    return figures


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;
max-width:1200px;color:#212121;line-height:1.45;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:2px solid #eceff1;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}
th,td{border:1px solid #cfd8dc;padding:.25em .55em;text-align:right}
th{background:#eceff1}td:first-child,th:first-child{text-align:left}
tr.sig td{background:#ffebee}img{max-width:100%;height:auto;border:1px solid #eceff1}
.meta{color:#546e7a}details{margin:.6em 0}summary{cursor:pointer;font-weight:600}
.viewer-link{display:none}
"""
# Links into the case table of `totalseg view STUDY`: hidden in the file, shown when served
# by the viewer (report at <token>/report/, case table at <token>/, `#flag=` filters it).


def _viewer_link(href: str, text: str) -> str:
    return f"<a class='viewer-link' href='{html.escape(href)}'>{html.escape(text)}</a>"


def _cell(column: str, value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v != v:
            return ""
        if v == 0.0 and (column == "p" or column.startswith("p_") or column.endswith("_p")):
            return "< 1e-300"  # underflow of a double, not a P of zero
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.3f}"
    return str(value)


def _table_html(df: pd.DataFrame, *, flagged_links: bool = False) -> str:
    """`flagged_links`: exclusion counts; link structures with flagged cases to the viewer."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    sig_col = "significant" in df.columns
    for row in df.itertuples(index=False):
        cls = ' class="sig"' if sig_col and bool(row.significant) else ""
        cells = [
            f"<td>{html.escape(_cell(c, v))}</td>" for c, v in zip(df.columns, row, strict=True)
        ]
        if flagged_links and row.n_below_min_volume + row.n_incomplete > 0:
            link = _viewer_link(f"../#flag={quote(str(row.structure))}", "flagged cases")
            cells[0] = f"<td>{html.escape(str(row.structure))} {link}</td>"
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def render_html(
    result: AnalysisResult,
    figures: dict[str, bytes],
    *,
    source: str,
    fans: dict[str, bytes] | None = None,
) -> str:
    """The self-contained HTML report (figures inline as base64 PNG, no external resources)."""
    from totalseg.study.sections import adjusted_section, fans_section

    cfg = result.config
    kept = int(result.exclusions["n_kept"].sum())
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>totalseg study report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Age study: organ volume and attenuation</h1>",
        f"<p class='meta'>Source: {html.escape(source)} &middot; generated "
        f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M')} &middot; {result.n_scans} scans, "
        f"{result.exclusions['structure'].nunique()} structures, {kept} measurements kept "
        f"&middot; significance level P &lt; {cfg.alpha:g} after Bonferroni correction"
        f"{' &middot; stratified by sex' if cfg.by_sex else ''}</p>",
        f"<p>{_viewer_link('../', 'Open the case table (flagged cases) in the viewer')}</p>",
        _methods_html(cfg),
        "<h2>Age groups</h2>",
        _table_html(result.quartiles),
    ]
    for measure in cfg.measures:
        parts.append(_measure_section(result, figures, measure))
    if result.adjusted is not None:
        parts.append(f"<h2>Adjusted for {html.escape(', '.join(cfg.adjust))}</h2>")
        parts += [adjusted_section(result, measure) for measure in cfg.measures]
    parts.append(fans_section(fans or {}))
    parts += [
        "<h2>Exclusions</h2>",
        "<details><summary>Measurements excluded per structure</summary>",
        _table_html(result.exclusions, flagged_links=True),
        "</details>",
        "<h2>Full tables</h2>",
    ]
    shown = {
        name[len(m) + 1 :] for name in figures for m in cfg.measures if name.startswith(f"{m}_")
    }
    for name, table in (
        ("kruskal", result.kruskal),
        ("normality", result.normality),
        ("pairwise", result.pairwise.loc[result.pairwise["structure"].isin(shown)]),
    ):
        note = " (structures with figures; all in pairwise.csv)" if name == "pairwise" else ""
        parts.append(f"<details><summary>{name}.csv{note}</summary>")
        parts.append(_table_html(table))
        parts.append("</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _measure_section(result: AnalysisResult, figures: dict[str, bytes], measure: str) -> str:
    from totalseg.study.figures import UNITS

    title = UNITS.get(measure, measure)
    sp = result.spearman.loc[result.spearman["measure"] == measure].drop(columns="measure")
    sig = sp.loc[sp["significant"]].assign(abs_r=lambda d: d["r_s"].abs())
    sig = sig.sort_values(["stratum", "abs_r"], ascending=[True, False])
    sig = sig[["stratum", "structure", "n", "r_s", "p", "p_bonferroni"]]
    if not result.config.by_sex:
        sig = sig.drop(columns="stratum")
    out = [
        f"<h2>{html.escape(title)} vs age</h2>",
        f"<p>{len(sig)} significant correlations (Spearman, Bonferroni-corrected P &lt; "
        f"{result.config.alpha:g}) of {int(sp['p'].notna().sum())} tested"
        f"{' (all strata)' if result.config.by_sex else ''}; figures of the strongest "
        "trends follow (scatter with least-squares line; box plots per age quartile). "
        "The table lists only correlations significant after Bonferroni correction "
        "(p_bonferroni); figure titles give each structure's uncorrected P, so a figure can "
        "show P &lt; .001 for a trend that is not significant here.</p>",
        _table_html(sig)
        if len(sig)
        else "<p><em>No correlation is significant after Bonferroni correction.</em></p>",
    ]
    for name, png in figures.items():
        if name.startswith(f"{measure}_"):
            out.append(_img(png, name))
    if f"overview_{measure}" in figures:
        out.append(_img(figures[f"overview_{measure}"], f"Spearman r_s overview, {title}"))
    out.append(f"<details><summary>spearman.csv ({html.escape(measure)})</summary>")
    out.append(_table_html(sp))
    out.append("</details>")
    return "\n".join(out)


def _methods_html(cfg: AnalysisConfig) -> str:
    incomplete = "kept" if cfg.include_incomplete else "excluded"
    return (
        "<h2>Methods</h2><p>Measurements of absent structures and of structures below their "
        "anatomically plausible lower volume bound (failed segmentations) are excluded; "
        f"structures touching the image border are {incomplete}. Normality: "
        "Kolmogorov-Smirnov test of standardized values (scipy.stats.kstest). Age trend: "
        "Spearman rank correlation (scipy.stats.spearmanr). Age quartiles: Kruskal-Wallis "
        "test (scipy.stats.kruskal) and post hoc pairwise Wilcoxon rank-sum tests "
        "(scipy.stats.ranksums) with Bonferroni correction over the six pairs; Spearman and "
        "Kruskal-Wallis P values are Bonferroni-corrected over the structures of each "
        f"measure. Significance level: P &lt; {cfg.alpha:g}. Structures with fewer than "
        f"{cfg.min_n} measurements are not tested. Box plots: whiskers at 1.5 IQR, "
        "outliers hidden.</p>"
    )
