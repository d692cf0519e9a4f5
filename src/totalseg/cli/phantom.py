"""`totalseg phantom`: synthetic CT phantoms with ground truth, and synthetic cohorts.

totalseg phantom --n 20 --out DIR [--seed 0] [--fov ...] [--spacing 1.5] [--phase ...]
totalseg phantom cohort --n 4004 --out DIR [--mode stats|image] [--seed 0] [--jobs N]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

import typer

app = typer.Typer(
    help=(
        "Synthetic whole-body CT phantoms with exact ground truth (the reference dataset's "
        "layout), and synthetic cohorts with planted age and sex effects."
    ),
    invoke_without_command=True,
)


class Fov(str, Enum):
    whole_body = "whole-body"
    thorax_abdomen = "thorax-abdomen"
    abdomen = "abdomen"
    random = "random"


class Phase(str, Enum):
    native = "native"
    arterial = "arterial"
    portal_venous = "portal-venous"
    random = "random"


class ClassMap(str, Enum):
    v1 = "v1"
    v2 = "v2"


class Mode(str, Enum):
    stats = "stats"
    image = "image"


@contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _check_counts(n: int, jobs: int) -> None:
    if n < 1:
        raise typer.BadParameter(f"expected at least 1 subject, got {n}", param_hint="--n")
    if jobs < 1:
        raise typer.BadParameter(f"expected at least 1 job, got {jobs}", param_hint="--jobs")


@app.callback()
def phantom(
    ctx: typer.Context,
    n: int = typer.Option(20, "--n", help="Number of subjects."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (created)."),
    seed: int = typer.Option(0, "--seed", help="Dataset seed; subject i uses (seed, i)."),
    fov: Fov = typer.Option(Fov.random, "--fov", help="Field of view (random: drawn)."),
    spacing: float | None = typer.Option(
        None, "--spacing", help="Isotropic spacing in mm (default: drawn, 0.6-5 mm)."
    ),
    phase: Phase = typer.Option(Phase.random, "--phase", help="Contrast phase."),
    orientation: str = typer.Option(
        "RAS", "--orientation", help="Stored orientation code (RAS, LPS, PIR, ...) or random."
    ),
    class_map: ClassMap = typer.Option(
        ClassMap.v1, "--class-map", help="v1: the paper's 104 classes; v2: 117."
    ),
    multilabel: bool = typer.Option(
        False, "--multilabel", help="Also write multilabel_<v1|v2>.nii.gz per subject."
    ),
    jobs: int = typer.Option(1, "--jobs", help="Parallel worker processes."),
) -> None:
    """Generate N phantoms: DIR/sXXXX/ct.nii.gz, DIR/sXXXX/segmentations/*.nii.gz, meta.csv."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise typer.BadParameter("an output folder is required", param_hint="--out")
    _check_counts(n, jobs)
    from totalseg.phantom.dataset import DatasetOptions, write_dataset

    options = DatasetOptions(
        fov=fov.value,
        spacing_mm=spacing,
        phase=phase.value,
        orientation=orientation,
        class_map=class_map.value,
        multilabel=multilabel,
    )
    if orientation != "random":
        from totalseg.phantom.params import sample_subject_params

        sample_subject_params(seed, orientation=orientation, spacing_mm=1.0)  # validates early
    with _progress("phantoms") as update:
        meta = write_dataset(out, n=n, seed=seed, options=options, jobs=jobs, progress=update)
    typer.echo(f"Wrote {n} phantoms to {out} (meta: {meta})")


@app.command("cohort")
def cohort(
    n: int = typer.Option(4004, "--n", help="Number of subjects."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    mode: Mode = typer.Option(
        Mode.stats, "--mode", help="stats: ground-truth table only; image: write the CTs."
    ),
    seed: int = typer.Option(0, "--seed", help="Cohort seed."),
    spacing: float = typer.Option(
        5.0, "--spacing", help="Grid (mm) of the ground-truth render in stats mode."
    ),
    jobs: int = typer.Option(1, "--jobs", help="Parallel worker processes."),
) -> None:
    """A synthetic cohort: per subject x structure volume (ml) and mean HU, or the images."""
    _check_counts(n, jobs)
    from totalseg.phantom.cohort import generate_cohort

    with _progress(f"cohort ({mode.value})") as update:
        table = generate_cohort(
            n, seed, mode=mode.value, out_dir=out, spacing_mm=spacing, jobs=jobs, progress=update
        )
    what = "cohort_stats.parquet / .csv" if mode is Mode.stats else "meta.csv"
    typer.echo(f"Wrote {len(table)} rows for {n} subjects to {out} ({what})")
