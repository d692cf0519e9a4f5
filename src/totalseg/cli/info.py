"""`totalseg info`: the structure registry and the model sets, instantly (no torch import)."""

from __future__ import annotations

import json
from enum import Enum

import typer

app = typer.Typer(help="Structures (classes) and model sets (tasks).", no_args_is_help=True)


class Version(str, Enum):
    v1 = "v1"
    v2 = "v2"


@app.command("classes")
def classes(
    version: Version = typer.Option(
        Version.v2, "--version", help="v1: the paper's 104 classes; v2: the current 117."
    ),
    task: str | None = typer.Option(
        None, "--task", help="The classes of this task instead (e.g. lung_vessels, total_mr)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the classes of a class map with id, group, the 1.5 mm part-model holding them and
    the SNOMED CT code that DICOM-SEG and RTSTRUCT outputs carry."""
    from totalseg.anatomy import class_map, get_structure, group_counts, structure_codes

    if task is not None:
        _task_classes(task, as_json=as_json)
        return
    rows = []
    for class_id, name in class_map(version.value).items():
        s = get_structure(name)
        dataset = s.v1_dataset if version is Version.v1 else s.v2_dataset
        local = s.v1_local if version is Version.v1 else s.v2_local
        rows.append(
            {"id": class_id, "name": name, "group": s.group, "part": dataset, "part_label": local,
             "snomed": structure_codes(name).as_dict()}
        )  # fmt: skip
    groups = group_counts(version.value)
    if as_json:
        doc = {"version": version.value, "n_classes": len(rows), "groups": groups, "classes": rows}
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{version.value}: {len(rows)} classes ({_group_line(groups)})")
    for col in ("id", "name", "group", "part", "part label", "SNOMED CT"):
        table.add_column(col, justify="right" if col in ("id", "part", "part label") else "left")
    for r in rows:
        cells = [str(r[k]) for k in ("id", "name", "group", "part", "part_label")]
        table.add_row(*cells, structure_codes(str(r["name"])).short())
    Console().print(table)


def _task_classes(name: str, *, as_json: bool) -> None:
    from totalseg.anatomy import class_map
    from totalseg.models.tasks import get_task

    spec = get_task(name)
    labels = class_map(spec.class_map)
    if as_json:
        doc = {"task": name, "class_map": spec.class_map, "classes": labels}
        typer.echo(json.dumps(doc, indent=2))
        return
    for class_id, label in labels.items():
        typer.echo(f"{class_id:4d}  {label}")


def _group_line(groups: dict[str, int]) -> str:
    return ", ".join(f"{n} {g}s" for g, n in groups.items())


@app.command("tasks")
def tasks(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the model sets (tasks) that `totalseg segment --task` accepts."""
    import dataclasses

    from totalseg.models.tasks import list_tasks

    specs = list_tasks()
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(t) for t in specs], indent=2, default=list))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Model sets")
    for col in ("task", "spacing (mm)", "class map", "models", "description"):
        table.add_column(col)
    for t in specs:
        table.add_row(
            t.name,
            t.spacing_text,
            t.class_map,
            ", ".join(str(d) for d in t.datasets),
            t.description,
        )
    Console().print(table)


@app.command("structure")
def structure(
    name: str = typer.Argument(..., help="Structure name, e.g. kidney_left."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show one structure: its group and its id and part-model in the v1 and v2 class maps."""
    import dataclasses

    from totalseg.anatomy import get_structure

    s = get_structure(name)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(s), indent=2))
        return
    typer.echo(f"{s.name} ({s.group})")
    for version, cid, ds, loc in (
        ("v1", s.v1_id, s.v1_dataset, s.v1_local),
        ("v2", s.v2_id, s.v2_dataset, s.v2_local),
    ):
        where = f"id {cid}, part {ds} label {loc}" if cid is not None else "not in this class map"
        typer.echo(f"  {version}: {where}")
