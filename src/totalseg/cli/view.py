"""`totalseg view CT [SEG]` / `totalseg view STUDY_DIR`: look at results in the browser."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["view_command"]


def view_command(
    path: Path = typer.Argument(
        ...,
        help="A CT (NIfTI file, DICOM folder or zip), or a study folder from `study run`.",
    ),
    seg: Path | None = typer.Argument(
        None, help="Its segmentation: a multilabel NIfTI or a folder of <name>.nii.gz masks."
    ),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Study mode: the `study analyze --out` folder to serve (default: STUDY/report).",
    ),
    min_volumes: Path | None = typer.Option(
        None,
        "--min-volumes",
        help="Study mode: CSV structure,min_volume_ml overriding the implausibility bounds.",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; other than loopback only when given."
    ),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port (0: a random free one)."),
    no_browser: bool = typer.Option(
        False, "--no-browser", help="Only print the URL; do not open a browser."
    ),
) -> None:
    """Local, read-only viewer (NiiVue): CT windows, labels by name, volumes and mean HU;
    for a study, a case table with flagged cases. Stop with Ctrl-C."""
    import webbrowser

    from totalseg.errors import InputError
    from totalseg.viewer import ViewerServer, is_loopback, open_catalog

    catalog = open_catalog(path, seg, report=report, min_volumes=min_volumes)
    try:
        server = ViewerServer(catalog, host=host, port=port)
    except OSError as exc:
        raise InputError(
            f"Expected to listen on {host}:{port}, got: {exc.strerror or exc}; "
            "choose another --port (or omit it for a random one) or another --host."
        ) from None
    if not is_loopback(host):
        typer.echo(
            f"Warning: serving on {host}, reachable from other machines; anyone with the URL "
            "(it holds the token) can read these scans.",
            err=True,
        )
    typer.echo(server.url)
    typer.echo(f"Serving {catalog.title} (read-only); press Ctrl-C to stop.", err=True)
    if not no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("Stopped.", err=True)
    finally:
        server.server_close()
