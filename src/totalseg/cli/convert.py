"""`totalseg convert`: a DICOM series (folder or zip) or a NIfTI file -> NIfTI."""

from __future__ import annotations

from pathlib import Path

import typer


def convert_command(
    source: Path = typer.Argument(..., help="DICOM folder, .zip of DICOM files, or NIfTI file."),
    output: Path = typer.Argument(..., help="Output NIfTI path (.nii or .nii.gz)."),
    series: str | None = typer.Option(
        None, "--series", help="SeriesInstanceUID to pick when the folder holds several series."
    ),
) -> None:
    """Convert a CT series to NIfTI (HU, RAS affine, slices sorted by position)."""
    from totalseg.errors import ImageFileError
    from totalseg.io import is_dicom_source, read_any, write_image
    from totalseg.io.nifti import is_nifti_path
    from totalseg.io.outputs import check_not_input

    if not is_nifti_path(output):
        raise ImageFileError(f"Expected an output path ending in .nii or .nii.gz, got '{output}'.")
    check_not_input([output], [source])
    image = read_any(source, series_uid=series)
    header_from = None if is_dicom_source(source) else source
    write_image(image, output, header_from=header_from)
    typer.echo(
        f"Wrote {output} ({'x'.join(map(str, image.shape))} voxels, "
        f"{' x '.join(f'{s:.3g}' for s in image.spacing_mm)} mm, {''.join(image.orientation)})"
    )
