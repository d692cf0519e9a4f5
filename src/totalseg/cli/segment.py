"""`totalseg segment`: segment CT volumes with a model set or an nnU-Net model folder.

Heavy imports (torch, the pipeline) happen inside the command so `totalseg --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from totalseg.errors import InputError

_NIFTI = (".nii.gz", ".nii")


def _case_name(path: Path) -> str:
    """The file name without its extension; the folder name for the public dataset's
    `<case>/ct.nii.gz`, so that `-i data/s*/ct.nii.gz` gives one output per case."""
    name = path.name
    for suffix in (*_NIFTI, ".zip"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.parent.name if name == "ct" and path.parent.name else name


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; a folder holding NIfTI files becomes its NIfTI files (sorted); any other
    folder or a .zip is one DICOM series."""
    cases: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InputError(
                f"Expected an input NIfTI file, DICOM folder or zip, got '{path}' which does not "
                "exist; give several structures as --roi-subset liver,spleen."
            )
        niftis = sorted(p for p in path.iterdir() if _is_nifti(p)) if path.is_dir() else []
        cases.extend(niftis or [path])
    return cases


def _roi_names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def _targets(cases: list[Path], output: Path, ml: bool) -> list[Path]:
    if len(cases) == 1:
        if ml and not _is_nifti(output):
            raise InputError(
                f"Expected an output file ending in .nii.gz with --ml, got '{output}'; pass "
                "e.g. -o segmentation.nii.gz."
            )
        return [output]
    if _is_nifti(output):
        raise InputError(
            f"Expected an output folder for {len(cases)} inputs, got the file name '{output}'."
        )
    names = [_case_name(c) for c in cases]
    if len(set(names)) != len(names):
        raise InputError(f"Expected distinct input names for one output folder, got {names}.")
    return [output / (f"{n}.nii.gz" if ml else n) for n in names]


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
    series: str | None = typer.Option(None, "--series", help="DICOM SeriesInstanceUID to use."),
) -> None:
    """Segment CT volumes; models are loaded once for all inputs."""
    from totalseg.io import read_any, write_label_map, write_mask_folder
    from totalseg.pipeline import Segmenter

    cases = expand_inputs([*inputs, *(more_inputs or [])])
    targets = _targets(cases, output, ml)
    bar = _ProgressBar(len(cases))
    segmenter = Segmenter(
        task, model_dir=model_dir, device=device, parity=parity, tile_step=tile_step,
        roi_subset=_roi_names(roi_subset), progress=bar.update,
    )  # fmt: skip
    with bar:
        for index, (case, target) in enumerate(zip(cases, targets, strict=True)):
            bar.start_case(index, case.name)
            image = read_any(case, series_uid=series)
            labels = segmenter(image)
            header = case if _is_nifti(case) else None
            if ml:
                write_label_map(labels, target, header_from=header)
                bar.echo(f"wrote {target}")
            else:
                written = write_mask_folder(
                    labels, target, labels=segmenter.labels, header_from=header
                )
                bar.echo(f"wrote {len(written)} masks to {target}")


class _ProgressBar:
    """A rich progress bar over cases, parts and tiles, on stderr (results stay on stdout)."""

    def __init__(self, n_cases: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.n_cases = n_cases
        self.case = ""
        self.bar = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=Console(stderr=True), transient=True,
        )  # fmt: skip
        self.task_id = self.bar.add_task("", total=None)

    def __enter__(self) -> _ProgressBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def start_case(self, index: int, name: str) -> None:
        self.case = f"case {index + 1}/{self.n_cases} {name}" if self.n_cases > 1 else name
        self.bar.update(self.task_id, description=f"{self.case}: preprocessing", completed=0)

    def update(self, p: object) -> None:
        part = f" part {p.part}/{p.n_parts}" if p.n_parts > 1 else ""  # type: ignore[attr-defined]
        self.bar.update(
            self.task_id,
            description=f"{self.case}{part} {p.model} tiles",  # type: ignore[attr-defined]
            completed=p.tiles_done,  # type: ignore[attr-defined]
            total=p.tiles_total,  # type: ignore[attr-defined]
        )

    def echo(self, text: str) -> None:
        typer.echo(text)
