"""`totalseg segment`: segment CT volumes with a model set or an nnU-Net model folder.

Heavy imports (torch, the pipeline) happen inside the command so `totalseg --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from totalseg.run import CaseResult, RunReporter


def segment_command(
    inputs: list[Path] = typer.Option(
        ..., "-i", "--input", help="NIfTI file, folder of NIfTIs, DICOM folder or zip (repeatable)."
    ),
    more_inputs: list[Path] | None = typer.Argument(
        None, help="More inputs (so that `-i a.nii.gz b.nii.gz` works).", show_default=False
    ),
    output: Path = typer.Option(
        ...,
        "-o",
        "--output",
        help="Mask folder, a .nii.gz with --ml, or a folder for several inputs.",
    ),
    task: str = typer.Option(
        "total",
        "--task",
        help="total, total-fast, total-fastest, or demo (the small model shipped with totalseg, "
        "no download); all: `totalseg info tasks`.",
    ),
    model_dir: Path | None = typer.Option(
        None, "--model-dir", help="Run this nnU-Net v2 model folder instead of a task."
    ),
    ml: bool = typer.Option(False, "--ml", help="One multilabel file with a label table."),
    roi_subset: list[str] | None = typer.Option(
        None, "--roi-subset", help="Keep only these structures (repeat, or comma-separated)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    parity: bool = typer.Option(False, "--parity", help="Bit-exact nnU-Net arithmetic (fp16)."),
    tile_step: float | None = typer.Option(None, "--tile-step", help="Tile step (task default)."),
    backend: str = typer.Option(
        "auto",
        "--backend",
        help="auto, torch or openvino (auto: OpenVINO on x86 CPUs if installed).",
    ),
    precision: str | None = typer.Option(
        None, "--precision", help="fp32, bf16 (CPUs with bf16 instructions) or fp16 (GPU default)."
    ),
    series: str | None = typer.Option(None, "--series", help="DICOM SeriesInstanceUID to use."),
    no_download: bool = typer.Option(
        False,
        "--no-download",
        help="Never download missing weights (also: TOTALSEG_OFFLINE=1 in the environment).",
    ),
) -> None:
    """Segment CT volumes; models are loaded once for all inputs.

    The official weights of a task are downloaded on first use (sha256-verified, see `totalseg
    weights download`) unless --no-download or TOTALSEG_OFFLINE=1; weights that TotalSegmentator
    installed (~/.totalsegmentator/nnunet/results) are used in place.
    """
    from totalseg.options import SegmentOptions
    from totalseg.run import run_segment

    options = SegmentOptions(
        task=task, model_dir=model_dir, roi_subset=tuple(roi_subset) if roi_subset else None,
        device=device, parity=parity, tile_step=tile_step, series_uid=series, multilabel=ml,
        download=not no_download, backend=backend, precision=precision,
    )  # fmt: skip
    with _ProgressBar() as bar:
        run_segment([*inputs, *(more_inputs or [])], output, options, reporter=bar)


class _ProgressBar(RunReporter):
    """A rich progress bar over cases, parts, tiles and weight downloads, on stderr. Results
    ("wrote ...") go to stdout; when both are one terminal they are printed through the bar's
    console (above the bar), so they never share a line with it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.case = ""
        self.bar = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=Console(stderr=True, highlight=False), transient=True,
            redirect_stdout=False, redirect_stderr=False,
        )  # fmt: skip
        self.task_id = self.bar.add_task("", total=None)

    def __enter__(self) -> _ProgressBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def _print(self, text: str, *, err: bool = False) -> None:
        shared_screen = self.bar.console.is_terminal and (err or sys.stdout.isatty())
        if shared_screen:
            self.bar.console.print(text, markup=False, soft_wrap=True)
        else:
            typer.echo(text, err=err)

    def notice(self, message: str) -> None:
        self._print(f"Warning: {message}", err=True)

    def archive_started(self, name: str, index: int, n_archives: int) -> None:
        self.bar.update(
            self.task_id, description=f"downloading {index + 1}/{n_archives} {name}", total=None
        )

    def archive_progress(self, done_bytes: int, total_bytes: int | None) -> None:
        mb = None if total_bytes is None else total_bytes / 1e6
        self.bar.update(self.task_id, completed=done_bytes / 1e6, total=mb)

    def archive_finished(self, archive: object) -> None:
        from totalseg.cli.weights import archive_line

        self._print(archive_line(archive), err=True)  # type: ignore[arg-type]

    def case_started(self, index: int, n_cases: int, source: Path) -> None:
        name = source.name
        self.case = f"case {index + 1}/{n_cases} {name}" if n_cases > 1 else name
        self.bar.update(self.task_id, description=f"{self.case}: preprocessing", completed=0)

    def tiles(self, progress: object) -> None:
        p = progress
        part = f" part {p.part}/{p.n_parts}" if p.n_parts > 1 else ""  # type: ignore[attr-defined]
        self.bar.update(
            self.task_id,
            description=f"{self.case}{part} {p.model} tiles",  # type: ignore[attr-defined]
            completed=p.tiles_done,  # type: ignore[attr-defined]
            total=p.tiles_total,  # type: ignore[attr-defined]
        )

    def case_finished(self, result: CaseResult) -> None:
        if result.target.is_dir():
            n = len(result.outputs)
            self._print(f"wrote {n} {'mask' if n == 1 else 'masks'} to {result.target}")
        else:
            self._print(f"wrote {result.target}")
