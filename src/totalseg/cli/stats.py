"""`totalseg stats CT SEG`: per-structure statistics of a CT inside a segmentation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from totalseg.stats import StructureStatsTable

__all__ = ["stats"]


def _split_names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def stats(
    ct: Path = typer.Argument(..., help="CT: a NIfTI file, a DICOM folder or a zip of one."),
    seg: Path = typer.Argument(
        ..., help="Segmentation on the CT grid: a multilabel NIfTI or a folder of <name>.nii.gz."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the table to FILE.json or FILE.csv (atomic)."
    ),
    structures: list[str] | None = typer.Option(
        None, "--structures", "-s", help="Only these structures (repeat or comma-separate)."
    ),
    border_voxels: int = typer.Option(
        3,
        "--border-voxels",
        min=0,
        help="Flag structures within this many voxels of the image border as incomplete (0: off).",
    ),
    reference_compatible: bool = typer.Option(
        False,
        "--reference-compatible",
        help="Emulate the reference tool (int16 image, 0.0 for absent/cut structures).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the full JSON to stdout."),
) -> None:
    """Volume, HU statistics, centroid, bounding box and status of every structure."""
    import json

    from totalseg.io import read_any
    from totalseg.preprocess.orientation import on_grid_of
    from totalseg.stats import compute_statistics, read_segmentation, write_statistics

    image = read_any(ct)
    label_map = on_grid_of(read_segmentation(seg), image)
    table = compute_statistics(
        image,
        label_map,
        structures=_split_names(structures),
        border_voxels=border_voxels,
        reference_compatible=reference_compatible,
    )
    if out is not None:
        write_statistics(table, out)
    if as_json:
        typer.echo(json.dumps(table.to_json_dict(), indent=2, allow_nan=False))
        return
    _render(table)
    if out is not None:
        typer.echo(f"Wrote {out}", err=True)


def _fmt(value: float, digits: int) -> str:
    return "NaN" if value != value else f"{value:.{digits}f}"


def _render(table: StructureStatsTable) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title=f"{len(table.present())} of {len(table)} structures present")
    for col in ("structure", "status", "volume_ml", "mean_hu", "median_hu", "std_hu", "n_voxels"):
        view.add_column(col, justify="left" if col in ("structure", "status") else "right")
    for row in table.present():
        view.add_row(
            row.name,
            row.status,
            _fmt(row.volume_ml, 2),
            _fmt(row.mean_hu, 1),
            _fmt(row.median_hu, 1),
            _fmt(row.std_hu, 1),
            str(row.n_voxels),
        )
    Console().print(view)
