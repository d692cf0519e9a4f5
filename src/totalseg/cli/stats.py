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
        help="Emulate the reference tool (int16 image, 0.0 for absent/cut structures); a "
        ".json --out (and --json) get its statistics.json layout.",
    ),
    class_map: str | None = typer.Option(
        None,
        "--class-map",
        help="Names of a multilabel file's ids: v1, v2, a task (e.g. total_mr) or a file "
        "(JSON {id: name} or 'ID,NAME' lines); overrides the file's label table.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the full JSON to stdout."),
    force: bool = typer.Option(
        False, "--force", help="Measure a CT that does not look like CT (tiny, constant, MR-like)."
    ),
) -> None:
    """Volume, HU statistics, centroid, bounding box and status of every structure."""
    import json

    from totalseg.image import LabelMap
    from totalseg.io import read_any
    from totalseg.io.outputs import check_not_input
    from totalseg.preprocess.orientation import on_grid_of
    from totalseg.preprocess.plausibility import check_ct
    from totalseg.stats import compute_statistics, read_segmentation, write_statistics

    if out is not None:
        check_not_input([out], [ct, seg])
    image = read_any(ct)
    check_ct(image, where=f"'{ct}'", force=force)
    label_map = read_segmentation(seg)
    if class_map is not None:
        label_map = LabelMap(label_map.array, label_map.affine, _class_map(class_map))
    label_map = on_grid_of(label_map, image)
    table = compute_statistics(
        image,
        label_map,
        structures=_split_names(structures),
        border_voxels=border_voxels,
        reference_compatible=reference_compatible,
    )
    reference_layout = reference_compatible and (out is None or out.suffix.lower() == ".json")
    if out is not None:
        write_statistics(table, out, format="reference" if reference_layout else None)
    if as_json:
        doc = table.to_reference_dict() if reference_layout else table.to_json_dict()
        typer.echo(json.dumps(doc, indent=2, allow_nan=False))
        return
    _render(table)
    if out is not None:
        typer.echo(f"Wrote {out}", err=True)


def _class_map(spec: str) -> dict[int, str]:
    from totalseg.anatomy import class_map, class_map_names
    from totalseg.io.labeltable import read_class_map_file

    if spec in class_map_names():
        return class_map(spec)
    from totalseg.models.tasks import list_tasks

    tasks = {t.name: t.class_map for t in list_tasks()}
    if spec in tasks:
        return class_map(tasks[spec])
    return read_class_map_file(spec)


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
