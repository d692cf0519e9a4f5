"""`totalseg weights`: import, download (sha256-pinned) and list installed model weights."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(
    help="Install and list model weights (home: $TOTALSEG_HOME or the platform data folder).",
    no_args_is_help=True,
)


@app.command("import")
def import_command(
    source: Path = typer.Argument(..., help="An official weights .zip or a folder holding one."),
    force: bool = typer.Option(False, "--force", help="Replace model folders already installed."),
) -> None:
    """Install model folders from a release zip or a directory (layout checked, atomic)."""
    from totalseg.models.weights import import_weights

    for path in import_weights(source, overwrite=force):
        typer.echo(f"installed {path}")


@app.command("download")
def download_command(
    task: str = typer.Argument(..., help="A task name (e.g. total) or one dataset id (e.g. 291)."),
    sha256: str | None = typer.Option(
        None, "--sha256", help="Expected sha256 of the zip (required where none is pinned)."
    ),
    url: str | None = typer.Option(None, "--url", help="Download from this URL instead."),
    force: bool = typer.Option(False, "--force", help="Re-download installed model folders."),
) -> None:
    """Download the official weights of a task, verify their sha256 and install them."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from totalseg.models.weights import download_weights

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    ) as bar:
        bar_id = bar.add_task(f"download {task}", total=None)

        def on_progress(done: int, total: int | None) -> None:
            bar.update(bar_id, completed=done, total=total)

        paths = download_weights(
            task, expected_sha256=sha256, url=url, overwrite=force, progress=on_progress
        )
    from totalseg.models.weights import weights_dir

    root = weights_dir()
    for path in paths:
        shipped = not path.is_relative_to(root)
        typer.echo(f"{'shipped with totalseg (no download)' if shipped else 'installed'}: {path}")


@app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List installed model folders."""
    from totalseg.models.weights import list_installed, weights_dir

    models = list_installed()
    rows = [
        {
            "dataset_id": m.dataset_id,
            "dataset": m.dataset_folder,
            "model": m.model,
            "folds": list(m.folds),
            "size_mb": round(m.size_bytes / 1e6, 1),
            "path": str(m.path),
        }
        for m in models
    ]
    if as_json:
        typer.echo(json.dumps({"weights_dir": str(weights_dir()), "models": rows}, indent=2))
        return
    if not rows:
        typer.echo(
            f"No weights installed in {weights_dir()}; run `totalseg weights download total` "
            "or `totalseg weights import ZIP`."
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Installed weights ({weights_dir()})")
    for col in ("id", "dataset", "model", "folds", "size MB"):
        table.add_column(col, justify="right" if col in ("id", "size MB") else "left")
    for m in models:
        table.add_row(
            str(m.dataset_id),
            m.dataset_folder,
            m.model,
            ",".join(m.folds),
            f"{m.size_bytes / 1e6:.1f}",
        )
    Console().print(table)
