"""`totalseg combine`: one mask from several structures (the reference's
`totalseg_combine_masks`), from a folder of per-class masks or a multilabel file."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["combine_command"]


def combine_command(
    source: Path = typer.Option(
        ..., "-i", "--input", help="A folder of <structure>.nii.gz masks or a multilabel NIfTI."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="The combined mask, a .nii.gz file."),
    mask: str = typer.Option(
        ...,
        "-m",
        "--mask",
        help="lung, lung_left, lung_right, vertebrae, ribs, "
        "vertebrae_ribs, heart, pelvis or body (`totalseg info classes` for the names).",
    ),
    ml: bool = typer.Option(
        False, "--ml", help="Write a one-label multilabel file (label 1 named after -m)."
    ),
) -> None:
    """Union of the structures of a combination, as one 0/1 mask on the source's grid."""
    from totalseg.anatomy import combination
    from totalseg.errors import InputError
    from totalseg.io import read_header, read_label_map, read_mask_folder, write_label_map
    from totalseg.postprocess.combine import combine_structures, expected_structures
    from totalseg.stats import mask_files

    combination(mask)  # an unknown name fails before any file is read
    if not output.name.lower().endswith((".nii.gz", ".nii")):
        raise InputError(f"Expected an output file ending in .nii.gz, got '{output}'.")
    if source.is_dir():
        names = expected_structures(mask, mask_files(source))
        labels = read_mask_folder(source, dict(enumerate(names, start=1)), missing_ok=False)
        header = next(source.glob(f"{names[0]}.nii*"))
    else:
        labels = read_label_map(source)
        names = expected_structures(mask, labels.labels.values())
        header = source
    combined = combine_structures(labels, names)
    if ml:
        from totalseg.image import LabelMap

        combined = LabelMap(combined.array, combined.affine, {1: mask})
    write_label_map(combined, output, header_from=read_header(header), label_table=ml)
    n = len(names)
    typer.echo(f"wrote {output}: {mask} = {n} structure{'' if n == 1 else 's'}")
