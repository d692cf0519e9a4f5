"""The files a segmentation run writes beside each case's segmentation: statistics, preview.

Names follow the reference tool: `statistics.json` (its layout) and `preview_<task>.png` go
into the mask folder, or beside a multilabel file (`-o seg.nii.gz` -> `./statistics.json`).
In a batch of multilabel files, which share one folder, they get the case id as a prefix
(`<case>_statistics.json`). `statistics.csv` is our richer table beside `statistics.json`:
one row per structure with every measure of `totalseg.stats` and a status that tells absent
from cut at the border (`incomplete`) from ok, where the reference writes 0.0 for both.

Statistics are measured on the grid of the result: the input's, or the model grid with
`save_lowres` (where the reference measures `--fast` runs at model resolution, totalseg always
measures the full-resolution result on the input CT).
"""

from __future__ import annotations

from pathlib import Path

from totalseg.image import Image, LabelMap
from totalseg.options import SegmentOptions

__all__ = ["REFERENCE_BORDER_VOXELS", "sidecar_path", "write_sidecars"]

#: the reference tool's border rule: structures within 3 voxels of the border are "incomplete"
REFERENCE_BORDER_VOXELS = 3


def sidecar_path(target: Path, filename: str, *, file_target: bool, batch: bool) -> Path:
    """Where a case's `filename` goes: inside its mask folder, beside its output file (a
    multilabel or DICOM file), or beside it with the case id as a prefix in a batch
    (`<case>_seg.nii.gz` -> `<case>_...`)."""
    if not file_target:
        return target / filename
    if not batch:
        return target.parent / filename
    case = target.name.removesuffix(".nii.gz").removesuffix(".nii").removesuffix("_seg")
    return target.parent / f"{case}_{filename}"


def write_sidecars(
    image: Image,
    labels: LabelMap,
    target: Path,
    options: SegmentOptions,
    *,
    task_name: str,
    batch: bool,
) -> list[Path]:
    """Write the statistics and the preview a run asks for; returns the paths written."""
    written: list[Path] = []

    file_target = options.multilabel or "nifti" not in options.output_types

    def place(filename: str) -> Path:
        return sidecar_path(target, filename, file_target=file_target, batch=batch)

    if options.statistics:
        written += write_run_statistics(
            image, labels, place("statistics.json"), place("statistics.csv"),
            include_incomplete=options.stats_include_incomplete,
        )  # fmt: skip
    if options.preview:
        from totalseg.render import write_preview

        path = place(f"preview_{task_name}.png")
        n = len(labels.present_labels())
        title = f"{target.name}: {n} structure{'' if n == 1 else 's'} ({task_name})"
        written.append(write_preview(image, labels, path, title=title))
    return written


def write_run_statistics(
    image: Image, labels: LabelMap, reference_path: Path, table_path: Path, *,
    include_incomplete: bool,
) -> list[Path]:  # fmt: skip
    """The reference's `statistics.json` (int16 image, 0.0 for absent and, unless
    `include_incomplete`, cut structures) and our table (float HU, every measure, status)."""
    from totalseg.stats import compute_statistics, write_statistics

    border = 0 if include_incomplete else REFERENCE_BORDER_VOXELS
    reference = compute_statistics(image, labels, border_voxels=border, reference_compatible=True)
    table = compute_statistics(image, labels, border_voxels=REFERENCE_BORDER_VOXELS)
    return [
        write_statistics(reference, reference_path, format="reference"),
        write_statistics(table, table_path, format="csv"),
    ]
