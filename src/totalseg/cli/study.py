"""`totalseg study run|analyze|reference`: population studies over a cohort of CT scans."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from totalseg.study import ProgressEvent

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Population studies: measure every structure of every scan of a cohort (run), then "
        "test age trends as in the paper and write a report (analyze), fit normative "
        "percentile curves by age and sex (reference)."
    ),
    no_args_is_help=True,
)


class _ProgressBar:
    """Renders ProgressEvents with a rich progress bar on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from totalseg.cli.app import quiet

        self.console = Console(stderr=True)
        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            "left",
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            disable=quiet(),
        )
        self.task: Any = None
        self.n_failed = 0

    def __call__(self, event: ProgressEvent) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("scans", total=event.n_total)
            return
        if event.status == "failed":
            self.n_failed += 1
            self.console.print(f"[yellow]failed[/yellow] {event.scan_id}: {event.reason}")
        self.progress.update(
            self.task, completed=event.n_done, description=f"scans ({self.n_failed} failed)"
        )

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()


@app.command("run")
def run(
    cohort: Path = typer.Argument(
        ...,
        help="Manifest CSV (path, subject_id, age, sex, covariates...) or a public-layout "
        "dataset folder with meta.csv.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Study folder (created; resumed if it exists)."
    ),
    task: str = typer.Option("total-fast", "--task", help="Model set to segment with."),
    model_dir: Path | None = typer.Option(
        None, "--model-dir", help="Use this nnU-Net model folder instead of --task."
    ),
    device: str = typer.Option(
        "auto", "--device", help="Device of each worker: auto, cpu, cuda, cuda:N."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Address of a running Dask scheduler (e.g. tcp://host:8786)."
    ),
    workers: int = typer.Option(
        2, "--workers", min=0, help="Local worker processes (0: run in this process, no Dask)."
    ),
    from_segmentations: bool = typer.Option(
        False, "--from-segmentations", help="Measure existing masks instead of running a model."
    ),
    seg_column: str = typer.Option(
        "seg_path", "--seg-column", help="Manifest column with each scan's segmentation."
    ),
    border_voxels: int = typer.Option(
        3, "--border-voxels", min=0, help="Border distance that flags a structure incomplete."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Also redo scans recorded as failed."
    ),
    fail_on_error: bool = typer.Option(
        False, "--fail-on-error", help="Exit 1 when any scan failed (default: only when all did)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Segment and measure every scan into STUDY/study.duckdb (+ Parquet); resumable.

    A missing model or its weights stop the run before any scan. Each failed scan is reported
    once; the exit code is 1 when every scan of the run failed (or any, with --fail-on-error).
    """
    import json

    from totalseg.study import StudyConfig, run_study

    config = StudyConfig(
        task=task,
        device=device,
        model_dir=None if model_dir is None else str(model_dir),
        from_segmentations=from_segmentations,
        border_voxels=border_voxels,
        workers=workers,
        scheduler=scheduler,
        retry_failed=retry_failed,
    )
    bar = _ProgressBar()
    try:
        summary = run_study(cohort, out, config=config, seg_column=seg_column, progress=bar)
    finally:
        bar.stop()
    if as_json:
        doc = {k: v for k, v in vars(summary).items() if k != "database"}
        typer.echo(json.dumps({**doc, "database": str(summary.database)}, indent=2))
    else:
        typer.echo(
            f"{summary.n_scans} scans: {summary.n_ok} measured, {summary.n_failed} failed, "
            f"{summary.n_skipped} already finished; {summary.counts.get('structure_rows', 0)} "
            f"structure rows in {summary.database} ({summary.elapsed_s:.1f} s)"
        )
    if summary.n_failed and (fail_on_error or summary.n_ok == 0):
        what = "every scan" if summary.n_ok == 0 else f"{summary.n_failed} scan(s)"
        typer.echo(
            f"Error: {what} of this run failed (reasons above and in {summary.database}); fix "
            "them and rerun with --retry-failed.",
            err=True,
        )
        raise typer.Exit(1)


@app.command("analyze")
def analyze(
    study: Path = typer.Argument(
        ...,
        help="Study folder from `study run`, a cohort folder (cohort_stats.parquet from "
        "`phantom cohort --mode stats`) or a .parquet/.csv long table.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Report folder (CSV tables, figures, HTML)."),
    alpha: float = typer.Option(1e-4, "--alpha", help="Significance level (paper: 0.0001)."),
    by_sex: bool = typer.Option(False, "--by-sex", help="Also analyze each sex separately."),
    min_volumes: Path | None = typer.Option(
        None,
        "--min-volumes",
        help="CSV structure,min_volume_ml[,rationale] overriding the shipped lower bounds.",
    ),
    include_incomplete: bool = typer.Option(
        False, "--include-incomplete", help="Keep structures that touch the image border."
    ),
    min_n: int = typer.Option(20, "--min-n", min=4, help="Fewest measurements to test."),
    adjust: str | None = typer.Option(
        None,
        "--adjust",
        help="Also test age effects adjusted for these columns (comma-separated, numeric or "
        "categorical, e.g. sex,height_cm,bmi): partial Spearman and robust linear model.",
    ),
    fdr_q: float = typer.Option(
        0.05, "--fdr-q", help="Benjamini-Hochberg false discovery rate shown beside Bonferroni."
    ),
    max_figures: int = typer.Option(
        12, "--max-figures", min=0, help="Structures drawn per measure (strongest trends)."
    ),
    reference: Path | None = typer.Option(
        None, "--reference", help="Folder of `study reference`: add its percentile fans."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Exclusions, normality, Spearman, Kruskal-Wallis, rank-sum post hoc (Bonferroni and
    FDR), optionally covariate-adjusted age effects; HTML report."""
    import json

    from totalseg.study import AnalysisConfig, analyze_study

    covariates = tuple(c.strip() for c in (adjust or "").split(",") if c.strip())
    config = AnalysisConfig(
        alpha=alpha,
        by_sex=by_sex,
        include_incomplete=include_incomplete,
        min_n=min_n,
        adjust=covariates,
        fdr_q=fdr_q,
    )
    result = analyze_study(
        study,
        out,
        config=config,
        min_volumes=min_volumes,
        max_figures=max_figures,
        reference=reference,
        progress=lambda msg: typer.echo(msg, err=True),
    )
    sp = result.spearman
    significant = {
        f"{stratum}/{measure}": int(g["significant"].sum())
        for (stratum, measure), g in sp.groupby(["stratum", "measure"], sort=True)
    }
    summary: dict[str, Any] = {
        "n_scans": result.n_scans,
        "significant_spearman": significant,
        "report": str(out / "report.html"),
    }
    adjusted = {}
    if result.adjusted is not None:
        adjusted = {
            f"{stratum}/{measure}": int(g["significant"].sum())
            for (stratum, measure), g in result.adjusted.groupby(["stratum", "measure"])
        }
        summary["significant_adjusted"] = adjusted
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for key, n in significant.items():
        typer.echo(f"{key}: {n} significant age correlations (Bonferroni, P < {alpha:g})")
        if key in adjusted:
            typer.echo(f"{key}: {adjusted[key]} adjusted for {','.join(covariates)}")
    typer.echo(f"Report: {out / 'report.html'}")


@app.command("reference")
def reference(
    study: Path = typer.Argument(
        ..., help="Study folder, cohort folder (cohort_stats.parquet) or .parquet/.csv table."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Reference folder (tables, figures)."),
    min_n: int = typer.Option(50, "--min-n", min=10, help="Fewest measurements per sex."),
    min_volumes: Path | None = typer.Option(
        None, "--min-volumes", help="CSV structure,min_volume_ml overriding the shipped bounds."
    ),
    include_incomplete: bool = typer.Option(
        False, "--include-incomplete", help="Keep structures that touch the image border."
    ),
    structures: str | None = typer.Option(
        None, "--structures", help="Draw fans of these structures (comma-separated)."
    ),
    max_figures: int = typer.Option(
        8, "--max-figures", min=0, help="Fans per measure (largest change over age)."
    ),
) -> None:
    """Age- and sex-specific percentile curves (2.5-97.5 %) of every structure's volume and
    mean HU: reference.parquet/.csv (versioned), reference_bands.csv, reference.json, fans."""
    from totalseg.study.reference import ReferenceConfig, write_reference

    names = [s.strip() for s in (structures or "").split(",") if s.strip()] or None
    table = write_reference(
        study,
        out,
        config=ReferenceConfig(min_n=min_n, include_incomplete=include_incomplete),
        min_volumes=min_volumes,
        structures=names,
        max_figures=max_figures,
        progress=lambda msg: typer.echo(msg, err=True),
    )
    n_curves = len(table.groupby(["structure", "measure", "sex"]))
    typer.echo(f"{n_curves} percentile curves written to {out / 'reference.parquet'}")
