"""`totalseg crop-to-body`: crop a CT to the box of the body (the reference's `crop_to_body`,
from intensities instead of its 6 mm body model)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["crop_to_body_command"]


def crop_to_body_command(
    source: Path = typer.Option(
        ..., "-i", "--input", help="CT: a NIfTI file, a DICOM folder or a zip of one."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="The cropped CT, a .nii.gz file."),
    margin_mm: float = typer.Option(
        3.0, "--margin-mm", min=0.0, help="Margin around the body (the reference's 3 mm)."
    ),
    series: str | None = typer.Option(None, "--series", help="DICOM SeriesInstanceUID to use."),
) -> None:
    """Crop a CT to the body box; the affine keeps the patient coordinates of every voxel."""
    from totalseg.errors import InputError
    from totalseg.io import is_nifti_path, read_any, write_image
    from totalseg.preprocess.body import crop_to_body

    if not is_nifti_path(output):
        raise InputError(f"Expected an output file ending in .nii.gz, got '{output}'.")
    image = read_any(source, series_uid=series)
    cropped = crop_to_body(image, margin_mm=margin_mm)
    if cropped is None:
        raise InputError(
            f"Expected a body (voxels above -500 HU) in '{source}', found none; is it a CT?"
        )
    body, box = cropped
    write_image(body, output, header_from=source if is_nifti_path(source) else None)
    ranges = ", ".join(f"{s.start}:{s.stop}" for s in box)
    shape = "x".join(map(str, body.shape))
    typer.echo(f"wrote {output}: voxels [{ranges}] of {'x'.join(map(str, image.shape))} ({shape})")
