"""`totalseg segment`: segment CT volumes with a model set or an nnU-Net model folder.

Heavy imports (torch, the pipeline) happen inside the command so `totalseg --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from totalseg.options import DEFAULT_MIN_BLOB_MM3
from totalseg.run import CaseFailure, CaseResult, RunReporter, expand_inputs


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
        help="auto (torch), torch or openvino (CPU; pip install 'totalseg\\[openvino]').",
    ),
    precision: str | None = typer.Option(
        None, "--precision", help="fp32, bf16 (CPUs with bf16 instructions) or fp16 (GPU default)."
    ),
    series: str | None = typer.Option(None, "--series", help="DICOM SeriesInstanceUID to use."),
    output_types: list[str] | None = typer.Option(
        None,
        "--output-type",
        help="nifti (default), dicom-seg, rtstruct; repeat for several (DICOM input only). "
        "Alone, -o is the DICOM file; with others they land beside -o as <stem>.seg.dcm, "
        "<stem>.rtstruct.dcm.",
    ),
    body_skip: bool | None = typer.Option(
        None,
        "--body-skip/--no-body-skip",
        help="Skip tiles outside the body (default: on for tasks, off for --model-dir and "
        "--parity); labels inside the body are unchanged.",
        show_default=False,
    ),
    no_download: bool = typer.Option(
        False,
        "--no-download",
        help="Never download missing weights (also: TOTALSEG_OFFLINE=1 in the environment).",
    ),
    # the reference tool's everyday options (issue 12), with its meaning
    fast: bool = typer.Option(False, "--fast", "-f", help="The 3 mm model: --task total-fast."),
    fastest: bool = typer.Option(
        False, "--fastest", "-ff", help="The 6 mm model: --task total-fastest."
    ),
    statistics: bool = typer.Option(
        False,
        "--statistics",
        "-s",
        help="Write statistics.json (the reference tool's layout: "
        "volume mm3, mean HU) and statistics.csv (every measure, status) beside the output.",
    ),
    stats_include_incomplete: bool = typer.Option(
        False,
        "--stats-include-incomplete",
        help="Report structures touching the image border "
        "too (by default statistics.json has 0.0 for them, as the reference tool).",
    ),
    preview: bool = typer.Option(
        False,
        "--preview",
        "-p",
        help="Write preview_<task>.png: coronal/sagittal projections "
        "and an axial slice with the labels in colour and a legend.",
    ),
    body_seg: bool = typer.Option(
        False,
        "--body-seg",
        help="Crop to the body (found from the HU values) before the "
        "model; the result is on the full input grid.",
    ),
    remove_small_blobs: float | None = typer.Option(
        None,
        "--remove-small-blobs",
        metavar="[MM3]",
        help="Remove connected components of at most MM3 mm3 per structure "
        f"(default {DEFAULT_MIN_BLOB_MM3:g} when no value is given).",
    ),
    v1_order: bool = typer.Option(
        False,
        "--v1-order",
        help="Label ids of the paper's 104-class v1 map (v2-only structures dropped).",
    ),
    save_lowres: bool = typer.Option(
        False,
        "--save-lowres",
        help="Save the result on the model grid (e.g. 3 mm with "
        "--fast) instead of resampling it to the input grid.",
    ),
    skip_saving: bool = typer.Option(
        False,
        "--skip-saving",
        help="Write no segmentation files (use with --statistics or --preview).",
    ),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Write a JSON run manifest (versions, device, task, weights "
        "hashes, options, timings, outputs) to this path.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Segment inputs that do not look like CT (tiny, constant, MR-like)."
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
        download=not no_download, body_skip=body_skip,
        output_types=tuple(output_types or ("nifti",)),
        fast=fast, fastest=fastest, statistics=statistics,
        stats_include_incomplete=stats_include_incomplete, preview=preview, body_seg=body_seg,
        remove_small_blobs_mm3=remove_small_blobs, v1_order=v1_order, save_lowres=save_lowres,
        skip_saving=skip_saving, report=report, force=force, backend=backend,
        precision=precision,
    )  # fmt: skip
    sources = [*inputs, *(more_inputs or [])]
    from totalseg.cli.app import quiet

    # -q: no progress bar, no result lines
    reporter = _CaseCounter() if quiet() else _ProgressBar()
    with reporter:
        try:
            run_segment(sources, output, options, reporter=reporter)
        except KeyboardInterrupt:  # SIGINT, or SIGTERM (see cli.app.main): outputs are atomic
            n_total = reporter.n_cases or len(expand_inputs(sources))
            raise _interrupted(reporter.n_finished, n_total) from None


def _interrupted(n_done: int, n_total: int) -> Exception:
    from totalseg.errors import InterruptedRun

    return InterruptedRun(
        f"Interrupted: {n_done} of {n_total} outputs finished, nothing partial left."
    )


class _CaseCounter(RunReporter):
    """Counts cases (for the "Interrupted: N of M" line) and shows nothing else."""

    def __init__(self) -> None:
        self.n_cases = 0
        self.n_finished = 0

    def __enter__(self) -> _CaseCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def case_started(self, index: int, n_cases: int, source: Path) -> None:
        self.n_cases = n_cases

    def case_finished(self, result: CaseResult) -> None:
        self.n_finished += 1


class _ProgressBar(_CaseCounter):
    """A rich progress bar over cases, parts, tiles and weight downloads, on stderr. Results
    ("wrote ...") go to stdout; when both are one terminal they are printed through the bar's
    console (above the bar), so they never share a line with it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.case = ""
        super().__init__()
        console = Console(stderr=True, highlight=False)
        self.bar = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True, redirect_stdout=False,
            redirect_stderr=False, disable=not console.is_terminal,
        )  # fmt: skip
        self.task_id = self.bar.add_task("", total=None)

    def __enter__(self) -> _ProgressBar:
        if self.bar.console.is_terminal:  # elsewhere rich prints the bar's last state: a blank
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar.live.is_started:
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
        self.n_cases = n_cases
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
        super().case_finished(result)
        masks = [p for p in result.outputs if p.name.endswith((".nii.gz", ".nii"))]
        if masks and result.target.is_dir():
            n = len(masks)
            self._print(f"wrote {n} {'mask' if n == 1 else 'masks'} to {result.target}")
        elif masks:
            self._print(f"wrote {result.target}")
        for path in result.outputs:
            if path not in masks:
                self._print(f"wrote {path}")
        if not result.outputs:
            self._print(f"{result.target.name}: nothing written (--skip-saving)")

    def case_failed(self, failure: CaseFailure) -> None:
        named = failure.source.name in failure.message
        where = "" if named else f"{failure.source}: "
        self._print(f"Error: {where}{failure.message}", err=True)
