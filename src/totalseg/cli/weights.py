"""`totalseg weights`: download (sha256-verified), import or link, and list model weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from totalseg.models.release import DownloadedArchive

app = typer.Typer(
    help=(
        "Download, import and list model weights (home: $TOTALSEG_HOME or the platform data "
        "folder; a TotalSegmentator install in ~/.totalsegmentator is used in place)."
    ),
    no_args_is_help=True,
)


@app.command("import")
def import_command(
    source: Path = typer.Argument(..., help="An official weights .zip or a folder holding one."),
    force: bool = typer.Option(False, "--force", help="Replace model folders already installed."),
    link: bool = typer.Option(
        False, "--link", help="Link a folder's model folders instead of copying them."
    ),
) -> None:
    """Install model folders from a release zip or a directory (layout checked, atomic)."""
    from totalseg.models.weights import import_weights

    for path in import_weights(source, overwrite=force, link=link):
        typer.echo(f"{'linked' if link else 'installed'} {path}")


def download_reporter() -> Any:
    """A rich progress bar per archive on stderr; prints each archive's sha256 when done."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from totalseg.cli.app import quiet
    from totalseg.models.release import DownloadReporter

    class _Bar(DownloadReporter):
        def __init__(self) -> None:
            self.console = Console(stderr=True)
            self.bar = Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), console=self.console, transient=True,
                disable=quiet(),
            )  # fmt: skip
            self.task_id: Any = None

        def archive_started(self, name: str, index: int, n_archives: int) -> None:
            self.bar.start()
            self.task_id = self.bar.add_task(f"{index + 1}/{n_archives} {name}", total=None)

        def archive_progress(self, done_bytes: int, total_bytes: int | None) -> None:
            self.bar.update(self.task_id, completed=done_bytes, total=total_bytes)

        def archive_finished(self, archive: DownloadedArchive) -> None:
            self.bar.remove_task(self.task_id)
            self.bar.stop()
            self.console.print(archive_line(archive), highlight=False, soft_wrap=True)

    return _Bar()


def archive_line(archive: DownloadedArchive) -> str:
    """`sha256sum`-style line of a verified archive, with what vouched for it."""
    how = {
        "package": "matches the hash pinned in totalseg",
        "user": "matches your pin",
        "lock": f"matches {archive.lock_file}",
        "first use": f"trusted on first use, recorded in {archive.lock_file}; pin it elsewhere "
        "with --hashes",
    }[archive.pinned_by]
    return f"{archive.sha256}  {archive.name}  ({how})"


@app.command("download")
def download_command(
    task: str = typer.Argument(..., help="A task name (e.g. total) or one dataset id (e.g. 291)."),
    sha256: list[str] | None = typer.Option(
        None,
        "--sha256",
        help="Pin an archive's sha256: HEX for a one-archive task, else ID=HEX (repeatable).",
    ),
    hashes: Path | None = typer.Option(
        None, "--hashes", help="Pins from a file of 'SHA256  NAME.zip' lines (sha256sum format)."
    ),
    url: str | None = typer.Option(None, "--url", help="Download one archive from this URL."),
    force: bool = typer.Option(False, "--force", help="Re-download installed model folders."),
) -> None:
    """Download every archive of a task from the official releases, verify, install.

    Each archive's sha256 is checked against your pin, totalseg's pin, or the hash recorded in
    the weights lock file when it was first downloaded (trust on first use: printed, recorded,
    and a later archive with another hash is refused). Set TOTALSEG_OFFLINE=1 to forbid it.
    """
    from totalseg.models.lock import parse_pins
    from totalseg.models.release import download_weights
    from totalseg.models.tasks import get_task, weights_entry
    from totalseg.models.weights import weights_dir

    ids = [int(task)] if task.isdigit() else list(get_task(task).datasets)
    archives = {str(i): f"{weights_entry(i).folder}.zip" for i in ids}
    pins = parse_pins(sha256 or [], hash_file=hashes, archives=archives)
    paths = download_weights(
        task, pins=pins, url=url, overwrite=force, reporter=download_reporter()
    )
    root = weights_dir()
    for path in paths:
        where = "installed" if path.is_relative_to(root) else "already available (no download)"
        typer.echo(f"{where}: {path}")


@app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the model folders totalseg can run: shipped, installed, and TotalSegmentator's."""
    from totalseg.models.external import totalsegmentator_weights_dir
    from totalseg.models.weights import list_available, weights_dir

    models = list_available()
    rows = [
        {
            "dataset_id": m.dataset_id,
            "dataset": m.dataset_folder,
            "model": m.model,
            "folds": list(m.folds),
            "size_mb": round(m.size_bytes / 1e6, 1),
            "source": m.source,
            "path": str(m.path),
        }
        for m in models
    ]
    doc = {
        "weights_dir": str(weights_dir()),
        "totalsegmentator_dir": str(totalsegmentator_weights_dir()),
        "models": rows,
    }
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    if not any(m.source != "shipped" for m in models):
        typer.echo(
            f"No official weights in {weights_dir()} or {totalsegmentator_weights_dir()}; run "
            "`totalseg weights download total` or `totalseg weights import ZIP`."
        )
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Model weights (home: {weights_dir()})")
    for col in ("id", "dataset", "model", "folds", "size MB", "source"):
        table.add_column(col, justify="right" if col in ("id", "size MB") else "left")
    for m in models:
        table.add_row(
            str(m.dataset_id),
            m.dataset_folder,
            m.model,
            ",".join(m.folds),
            f"{m.size_bytes / 1e6:.1f}",
            m.source,
        )
    Console().print(table)
