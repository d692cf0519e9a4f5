"""`totalseg evaluate` (predictions vs a reference dataset) and `totalseg compare` (two models)."""

from __future__ import annotations

import json
import logging
from enum import Enum
from pathlib import Path
from typing import Any

import click
import typer

log = logging.getLogger(__name__)


class ClassMap(str, Enum):
    v1 = "v1"
    v2 = "v2"


def _split(values: list[str] | None) -> list[str]:
    """Repeated options and comma-separated lists both work: -s liver,spleen -s aorta."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _structure_choice(structures: list[str] | None, subset: str | None) -> list[str] | None:
    from totalseg.anatomy import subset as named_subset

    names = _split(structures)
    if names and subset:
        raise click.UsageError("Pass either --structures or --subset, not both.")
    if subset:
        return list(named_subset(subset))
    return names or None


def evaluate_command(
    pred: Path = typer.Option(..., "--pred", help="Predictions: folder of cases or one file."),
    ref: Path = typer.Option(..., "--ref", help="Reference: dataset folder or one file."),
    out: Path = typer.Option(..., "--out", help="Folder for metrics.csv/.parquet, summary.json."),
    structures: list[str] | None = typer.Option(
        None, "--structures", "-s", help="Structure names (repeat or comma-separate)."
    ),
    subset: str | None = typer.Option(None, "--subset", help="Named subset, e.g. btcv13."),
    tolerance_mm: float = typer.Option(3.0, "--tolerance-mm", help="NSD tolerance in mm."),
    class_map: ClassMap = typer.Option(
        ClassMap.v2, "--class-map", help="Ids of prediction files without a label table."
    ),
    ref_class_map: ClassMap | None = typer.Option(
        None, "--ref-class-map", help="Same for references (default: --class-map)."
    ),
    metrics: list[str] | None = typer.Option(
        None, "--metrics", help="Metrics to compute (default: all; e.g. dice,nsd)."
    ),
    split: str | None = typer.Option(
        None, "--split", help="Only reference cases of this split (train/val/test) in meta.csv."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes across cases."),
    n_resamples: int = typer.Option(10_000, "--n-resamples", min=1, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    csv_only: bool = typer.Option(False, "--csv-only", help="Skip Parquet (no pandas needed)."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json to stdout."),
) -> None:
    """Dice, NSD, HD95, ASSD and volumes per case and structure, with bootstrap 95% CIs.

    Layouts (predictions and references alike): <case>.nii.gz multilabel files (names from the
    file's label table, else --class-map ids), <case>/<structure>.nii.gz per-class folders, or
    the public dataset's <case>/segmentations/<structure>.nii.gz. Cases match by case id.
    """
    from totalseg.io.outputs import require_folder
    from totalseg.metrics.dataset import EvaluationConfig, evaluate_dataset, write_results
    from totalseg.metrics.structure import METRICS
    from totalseg.metrics.tables import require_tables_extra

    names = _structure_choice(structures, subset)
    require_folder(out)
    if not csv_only:
        require_tables_extra("pandas", "pyarrow")
    config = EvaluationConfig(
        tolerance_mm=tolerance_mm,
        metrics=tuple(_split(metrics)) or METRICS,
        pred_class_map=class_map.value,
        ref_class_map=(ref_class_map or class_map).value,
    )

    def progress(done: int, total: int, case_id: str) -> None:
        log.info("case %d/%d done: %s", done, total, case_id)

    result = evaluate_dataset(
        pred, ref, structures=names, config=config, split=split, jobs=jobs, progress=progress
    )
    summary = write_results(
        result,
        out,
        parquet=not csv_only,
        n_resamples=n_resamples,
        seed=seed,
        sources={"prediction": str(pred), "reference": str(ref), "split": split},
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary, out, csv_only=csv_only)


def _print_summary(summary: dict[str, Any], out: Path, *, csv_only: bool) -> None:
    from totalseg.metrics.comparison import METRIC_LABELS
    from totalseg.metrics.statistics import MeanCI

    with_nsd = (summary["overall"].get("nsd") or {}).get("mean") is not None
    tolerance = f" (NSD tolerance {summary['tolerance_mm']:g} mm)" if with_nsd else ""
    n_cases = int(summary["n_cases"])
    typer.echo(
        f"Evaluated {n_cases} {'case' if n_cases == 1 else 'cases'} x "
        f"{summary['n_structures']} structures{tolerance}."
    )
    _warn_sample_size(n_cases)
    for metric in ("dice", "nsd", "hd95_mm", "assd_mm"):
        o = summary["overall"].get(metric)
        if o and o["mean"] is not None:
            low, high = (float("nan") if v is None else v for v in (o["ci_low"], o["ci_high"]))
            ci = MeanCI(o["mean"], low, high, o["n"])
            typer.echo(f"{METRIC_LABELS[metric]} {ci.format()}")
    counts = summary["status_counts"]
    typer.echo(
        f"Pairs: {counts.get('ok', 0)} evaluated, {counts.get('pred_empty', 0)} missed by the "
        f"prediction (Dice/NSD 0), {counts.get('ref_empty', 0) + counts.get('both_empty', 0)} "
        "excluded (structure absent from the reference)."
    )
    if summary["cases_without_prediction"]:
        typer.echo(
            f"Warning: {len(summary['cases_without_prediction'])} reference case(s) have no "
            "prediction and were skipped (listed in summary.json).",
            err=True,
        )
    files = ["metrics.csv", *([] if csv_only else ["metrics.parquet"]), "summary.json"]
    typer.echo("Wrote " + ", ".join(str(out / f) for f in files))


#: below this many cases a bootstrap CI of a mean is too unstable to report without a warning
MIN_CASES_FOR_CI = 10
#: the exact two-sided Wilcoxon signed-rank P cannot go below 2 / 2**n: n < 6 never gives .05
MIN_PAIRS_FOR_WILCOXON = 6


def _warn_sample_size(n_cases: int, *, paired: bool = False) -> None:
    if n_cases == 1:
        typer.echo(
            "Warning: 1 case: the 95% CIs span nothing (a bootstrap over cases needs several); "
            "read the numbers as that one case's values.",
            err=True,
        )
    elif n_cases < MIN_CASES_FOR_CI:
        typer.echo(
            f"Warning: only {n_cases} cases: bootstrap 95% CIs are unreliable below "
            f"{MIN_CASES_FOR_CI}; evaluate more cases before drawing conclusions.",
            err=True,
        )
    if paired and n_cases < MIN_PAIRS_FOR_WILCOXON:
        typer.echo(
            f"Warning: only {n_cases} paired cases: a Wilcoxon signed-rank test cannot reach "
            f"P < .05 with fewer than {MIN_PAIRS_FOR_WILCOXON}; its P values say little here.",
            err=True,
        )


def compare_command(
    results_a: Path = typer.Argument(..., help="Results folder (or table) of model A."),
    results_b: Path = typer.Argument(..., help="Results folder (or table) of model B."),
    out: Path = typer.Option(..., "--out", help="Folder for comparison.csv and comparison.png."),
    structures: list[str] | None = typer.Option(
        None, "--structures", "-s", help="Structure names (repeat or comma-separate)."
    ),
    subset: str | None = typer.Option(None, "--subset", help="Named subset, e.g. btcv13."),
    metric: list[str] | None = typer.Option(
        None, "--metric", help="Metrics to compare (default: dice and nsd)."
    ),
    names: str | None = typer.Option(None, "--names", help="Model names 'A,B' (default: folders)."),
    n_resamples: int = typer.Option(10_000, "--n-resamples", min=1, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
) -> None:
    """Compare two evaluations of the same cases: means with 95% CIs and Wilcoxon P values.

    Prints lines like "Dice 0.932 (95% CI: 0.920, 0.942) vs 0.871 (0.855, 0.887); P < .001" and
    writes a per-structure table (comparison.csv) and figure (comparison.png).
    """
    from totalseg.metrics.comparison import (
        compare_tables,
        comparison_lines,
        comparison_records,
        plot_comparison,
    )
    from totalseg.metrics.tables import read_table, require_tables_extra

    require_tables_extra("pandas", "matplotlib")
    import pandas as pd

    chosen = _structure_choice(structures, subset)
    labels = _split([names] if names else None) or [results_a.name, results_b.name]
    if len(labels) != 2:
        raise click.BadParameter(f"expected two names 'A,B', got {names!r}", param_hint="--names")
    comparison = compare_tables(
        read_table(results_a),
        read_table(results_b),
        names=(labels[0], labels[1]),
        structures=chosen,
        metrics=_split(metric) or ("dice", "nsd"),
        n_resamples=n_resamples,
        seed=seed,
    )
    out.mkdir(parents=True, exist_ok=True)
    table = out / "comparison.csv"
    tmp = out / ".comparison.csv.tmp"
    pd.DataFrame(comparison_records(comparison)).to_csv(tmp, index=False)
    tmp.replace(table)
    figure = plot_comparison(comparison, out / "comparison.png")
    typer.echo(
        f"{labels[0]} vs {labels[1]}: {len(comparison.cases)} cases, "
        f"{len(comparison.structures)} structures"
    )
    for line in comparison_lines(comparison):
        typer.echo(line)
    _warn_sample_size(len(comparison.cases), paired=True)
    typer.echo(f"Wrote {table}, {figure}")


def register(app: typer.Typer) -> None:
    """Add `evaluate` and `compare` to the root app."""
    app.command("evaluate")(evaluate_command)
    app.command("compare")(compare_command)
