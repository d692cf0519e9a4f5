"""`totalseg stats CT SEG`: per-structure statistics of a CT inside a segmentation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from totalseg.stats import StructureStatsTable
    from totalseg.study.zscore import Score

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
    reference: Path | None = typer.Option(
        None,
        "--reference",
        help="Reference folder of `totalseg study reference`: add each structure's percentile "
        "and z-score (needs --age and --sex).",
    ),
    age: float | None = typer.Option(None, "--age", help="Age (years) of the scan's subject."),
    sex: str | None = typer.Option(None, "--sex", help="Sex of the scan's subject: m or f."),
    as_json: bool = typer.Option(False, "--json", help="Print the full JSON to stdout."),
    force: bool = typer.Option(
        False, "--force", help="Measure a CT that does not look like CT (tiny, constant, MR-like)."
    ),
) -> None:
    """Volume, HU statistics, centroid, bounding box and status of every structure; with
    --reference, percentiles and z-scores against normative values (flagged outside 2.5-97.5 %)."""
    import json

    from totalseg.image import LabelMap
    from totalseg.io import read_any
    from totalseg.io.outputs import check_not_input
    from totalseg.preprocess.orientation import on_grid_of
    from totalseg.preprocess.plausibility import check_ct
    from totalseg.stats import compute_statistics, read_segmentation, write_statistics

    scorer = None if reference is None else _reference(reference, age, sex)
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
    scores = [] if scorer is None else _scores(table, *scorer)
    if scorer is not None and scorer[3]:
        typer.echo(f"Warning: {scorer[3]}", err=True)
    if as_json:
        doc = table.to_reference_dict() if reference_layout else table.to_json_dict()
        if scorer is not None:
            doc["reference"] = _reference_doc(reference, scorer, scores)
        typer.echo(json.dumps(doc, indent=2, allow_nan=False))
        return
    _render(table)
    if scores:
        _render_scores(scores)
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


_Scorer = tuple[Any, float, str, str]


def _reference(path: Path, age: float | None, sex: str | None) -> _Scorer:
    """(reference table, age, sex, support note), checked before the CT is read."""
    from totalseg.errors import InputError
    from totalseg.study.manifest import normalize_sex
    from totalseg.study.zscore import ReferenceTable

    if age is None or sex is None:
        raise InputError(
            "Expected --age and --sex with --reference, got "
            f"{'no --age' if age is None else 'no --sex'}; e.g. --age 63 --sex f."
        )
    code = normalize_sex(sex) or ""
    if code not in ("M", "F"):
        raise InputError(f"Expected --sex m or f, got {sex!r}.")
    table = ReferenceTable.load(path)
    return table, float(age), code, table.support_note(age=float(age), sex=code)


def _scores(table: StructureStatsTable, ref: Any, age: float, sex: str, _note: str) -> list[Score]:
    out = []
    for row in table.present():
        for measure, value in (("volume_ml", row.volume_ml), ("mean_hu", row.mean_hu)):
            out.append(ref.score(row.name, measure, float(value), age=age, sex=sex))
    return out


def _reference_doc(path: Path | None, scorer: _Scorer, scores: list[Score]) -> dict[str, Any]:
    import math
    from dataclasses import asdict

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}

    return {
        "path": str(path),
        "age": scorer[1],
        "sex": scorer[2],
        "support_note": scorer[3],
        "band": [2.5, 97.5],
        "scores": [clean(asdict(s)) for s in scores],
    }


def _render_scores(scores: list[Score]) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title="Against the reference (flag: outside the 2.5-97.5 % band)")
    for col in ("structure", "measure", "value", "percentile", "z", "flag", "note"):
        view.add_column(col, justify="right" if col in ("value", "percentile", "z") else "left")
    for s in scores:
        flag = ("low" if s.z < 0 else "high") if s.outside_band else ""
        view.add_row(
            s.structure,
            s.measure,
            _fmt(s.value, 1),
            _fmt(s.percentile, 1),
            _fmt(s.z, 2),
            flag,
            s.note,
        )
    Console().print(view)
