"""`totalseg phantom`: synthetic CT phantoms with ground truth, and synthetic cohorts.

totalseg phantom --n 20 --out DIR [--seed 0] [--fov ...] [--spacing-mm 1.5] [--phase ...]
totalseg phantom cohort --n 4004 --out DIR [--mode stats|image] [--seed 0] [--jobs N]

`--spacing-mm` is the spacing flag of every command (`demo`, `train`, `plan` too); the old
`--spacing` still works here, hidden, with a deprecation warning.
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


class Engine(str, Enum):
    model = "model"
    render = "render"


class Mode(str, Enum):
    stats = "stats"
    image = "image"


@contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from totalseg.cli.app import quiet

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
        disable=quiet(),
    ) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _spacing(new: float | None, old: float | None) -> float | None:
    """--spacing-mm, or the deprecated --spacing (said once on stderr)."""
    if old is None:
        return new
    typer.echo("Warning: --spacing is deprecated; use --spacing-mm.", err=True)
    if new is not None and new != old:
        raise typer.BadParameter(
            f"got --spacing-mm {new:g} and --spacing {old:g}", param_hint="--spacing-mm"
        )
    return old


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


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
    spacing_mm: float | None = typer.Option(
        None, "--spacing-mm", help="Isotropic spacing in mm (default: drawn, 0.6-5 mm)."
    ),
    spacing_old: float | None = typer.Option(None, "--spacing", hidden=True),
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
        spacing_mm=_spacing(spacing_mm, spacing_old),
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
    typer.echo(f"Wrote {_plural(n, 'phantom')} to {out} (meta: {meta})")


@app.command("cohort")
def cohort(
    n: int = typer.Option(4004, "--n", help="Number of subjects."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    mode: Mode = typer.Option(
        Mode.stats, "--mode", help="stats: ground-truth table only; image: write the CTs."
    ),
    seed: int = typer.Option(0, "--seed", help="Cohort seed."),
    spacing_mm: float | None = typer.Option(
        None, "--spacing-mm", help="Grid (mm) of the ground-truth render in stats mode [5]."
    ),
    spacing_old: float | None = typer.Option(None, "--spacing", hidden=True),
    jobs: int = typer.Option(1, "--jobs", help="Parallel worker processes."),
    engine: Engine = typer.Option(
        Engine.model,
        "--engine",
        help="stats mode: model (one template render per sex, then formulas; seconds for "
        "thousands) or render (every subject rendered; about 1 s each at 5 mm).",
    ),
    height_trend: float = typer.Option(
        -2.5,
        "--height-trend",
        help="stats mode: the planted confounder, height change (cm) per decade of age, "
        "which scales every volume (0: off).",
    ),
) -> None:
    """A synthetic cohort: per subject x structure volume (ml) and mean HU, or the images."""
    _check_counts(n, jobs)
    from totalseg.phantom.cohort import generate_cohort
    from totalseg.phantom.effects import HeightTrend

    with _progress(f"cohort ({mode.value})") as update:
        table = generate_cohort(
            n,
            seed,
            mode=mode.value,
            out_dir=out,
            jobs=jobs,
            progress=update,
            spacing_mm=_spacing(spacing_mm, spacing_old) or 5.0,
            engine=engine.value,
            height_trend=HeightTrend(height_trend) if height_trend else None,
        )
    what = "cohort_stats.parquet / .csv" if mode is Mode.stats else "meta.csv"
    typer.echo(f"Wrote {_plural(len(table), 'row')} for {_plural(n, 'subject')} to {out} ({what})")
