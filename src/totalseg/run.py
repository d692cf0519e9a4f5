"""Segment inputs into output files: the one batch loop that the CLI and the API share.

`run_segment(inputs, output, options)` expands the inputs (files, folders of NIfTI files, DICOM
folders or zips), names one output per case, builds one `Segmenter` (models stay loaded), then per
case: read -> segment -> write. Progress goes to a `RunReporter` (the CLI renders it); the library
never prints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from totalseg.errors import InputError
from totalseg.options import SegmentOptions

__all__ = [
    "CaseResult",
    "RunReporter",
    "RunResult",
    "case_name",
    "expand_inputs",
    "output_targets",
    "run_segment",
]

_NIFTI = (".nii.gz", ".nii")


@dataclass(frozen=True)
class CaseResult:
    """One input and what was written for it (`target`: the output file or mask folder)."""

    source: Path
    target: Path
    outputs: tuple[Path, ...]
    n_structures: int
    elapsed_s: float


@dataclass(frozen=True)
class RunResult:
    """Every case of a run, in input order."""

    cases: tuple[CaseResult, ...]


class RunReporter:
    """Receives progress; the default ignores it. The CLI subclasses it to draw a progress bar."""

    def case_started(self, index: int, n_cases: int, source: Path) -> None:
        """Case `index` (0-based) of `n_cases` starts."""

    def tiles(self, progress: object) -> None:
        """A `pipeline.SegmentProgress` during prediction."""

    def case_finished(self, result: CaseResult) -> None:
        """A case was segmented and written."""


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI)


def case_name(path: Path) -> str:
    """The file name without its extension; the folder name for the public dataset's
    `<case>/ct.nii.gz`, so that `-i data/s*/ct.nii.gz` gives one output per case."""
    name = path.name
    for suffix in (*_NIFTI, ".zip"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.parent.name if name == "ct" and path.parent.name else name


def expand_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files as given; a folder holding NIfTI files becomes its NIfTI files (sorted); any other
    folder or a .zip is one DICOM series."""
    cases: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(
                f"Expected an input NIfTI file, DICOM folder or zip, got '{path}' which does not "
                "exist; give several structures as --roi-subset liver,spleen."
            )
        niftis = sorted(p for p in path.iterdir() if _is_nifti(p)) if path.is_dir() else []
        cases.extend(niftis or [path])
    return cases


def output_targets(cases: Sequence[Path], output: Path, *, multilabel: bool) -> list[Path]:
    """One output path per case: `output` itself for one case, else `output/<case name>`."""
    if len(cases) == 1:
        if multilabel and not _is_nifti(output):
            raise InputError(
                f"Expected an output file ending in .nii.gz with --ml, got '{output}'; pass "
                "e.g. -o segmentation.nii.gz."
            )
        return [output]
    if _is_nifti(output):
        raise InputError(
            f"Expected an output folder for {len(cases)} inputs, got the file name '{output}'."
        )
    names = [case_name(c) for c in cases]
    if len(set(names)) != len(names):
        raise InputError(f"Expected distinct input names for one output folder, got {names}.")
    return [output / (f"{n}.nii.gz" if multilabel else n) for n in names]


def run_segment(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: SegmentOptions | None = None,
    *,
    reporter: RunReporter | None = None,
) -> RunResult:
    """Segment every input with one model set and write its outputs; returns what was written."""
    from totalseg.io import read_any, write_label_map, write_mask_folder
    from totalseg.pipeline import Segmenter

    options = options or SegmentOptions()
    reporter = reporter or RunReporter()
    cases = expand_inputs(inputs)
    targets = output_targets(cases, Path(output), multilabel=options.multilabel)
    segmenter = Segmenter(options=options, progress=reporter.tiles)
    results: list[CaseResult] = []
    for index, (case, target) in enumerate(zip(cases, targets, strict=True)):
        reporter.case_started(index, len(cases), case)
        started = time.perf_counter()
        image = read_any(case, series_uid=options.series_uid)
        labels = segmenter(image)
        header = case if _is_nifti(case) else None
        if options.multilabel:
            written = [write_label_map(labels, target, header_from=header)]
        else:
            written = write_mask_folder(labels, target, labels=segmenter.labels, header_from=header)
        elapsed_s = time.perf_counter() - started
        result = CaseResult(case, target, tuple(written), len(segmenter.labels), elapsed_s)
        results.append(result)
        reporter.case_finished(result)
    return RunResult(tuple(results))
