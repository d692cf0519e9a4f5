"""Segment inputs into output files: the one batch loop that the CLI and the API share.

`run_segment(inputs, output, options)` expands the inputs (files, folders of NIfTI files, DICOM
folders or zips), names one output per case, builds one `Segmenter` (models stay loaded; missing
official weights are downloaded first), then per case: read -> segment -> write. Progress goes to
a `RunReporter` (the CLI renders it); the library never prints.

Output names: one input writes exactly `output`. Several inputs write into the folder `output`,
one entry per case named by its case id (the file name without .nii.gz, or the case folder for
the public dataset's `<case>/ct.nii.gz`): `<case>/` mask folders, or `<case>_seg.nii.gz` with
`multilabel` (never the input's own file name, so a segmentation is not mistaken for a CT and
an output folder that holds the inputs is safe). `evaluate` reads both back by case id.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from totalseg.errors import InputError
from totalseg.models.release import DownloadReporter
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
log = logging.getLogger(__name__)

#: said once per run when the demo model segments a scan that is not a totalseg phantom
DEMO_WARNING = (
    "the demo model was trained on synthetic phantoms only and is unreliable on real scans; "
    "for real scans get the official weights: `totalseg weights download total` (or "
    "`totalseg weights import ZIP`), then `--task total`."
)


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


class RunReporter(DownloadReporter):
    """Receives progress (cases, tiles, weight downloads) and notices; the default ignores
    progress and logs notices. The CLI subclasses it to draw a progress bar."""

    def notice(self, message: str) -> None:
        """Something the user should read once (e.g. the demo model on a real scan)."""
        log.warning(message)

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
                f"exist; {_missing_input_hint(path)}."
            )
        niftis = sorted(p for p in path.iterdir() if _is_nifti(p)) if path.is_dir() else []
        cases.extend(niftis or [path])
    return cases


def _missing_input_hint(path: Path) -> str:
    """A structure name after `--roi-subset liver` lands among the inputs: say so only then."""
    from totalseg.anatomy import structures

    if path.name == str(path) and path.name in {s.name for s in structures()}:
        return (
            f"'{path.name}' is a structure name: give several structures as "
            "--roi-subset liver,spleen"
        )
    return "check the path (and that the file or folder is readable)"


def output_targets(cases: Sequence[Path], output: Path, *, multilabel: bool) -> list[Path]:
    """One output path per case: `output` itself for one case, else `output/<case>` (masks)
    or `output/<case>_seg.nii.gz` (multilabel)."""
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
    return [output / (f"{n}_seg.nii.gz" if multilabel else n) for n in names]


def run_segment(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: SegmentOptions | None = None,
    *,
    reporter: RunReporter | None = None,
) -> RunResult:
    """Segment every input with one model set and write its outputs; returns what was written."""
    from totalseg.io import is_phantom_file, read_any, write_label_map, write_mask_folder
    from totalseg.io.outputs import check_not_input, check_writable
    from totalseg.pipeline import Segmenter
    from totalseg.preprocess.plausibility import check_ct

    options = options or SegmentOptions()
    reporter = reporter or RunReporter()
    cases = expand_inputs(inputs)
    targets = output_targets(cases, Path(output), multilabel=options.multilabel)
    check_not_input(targets, cases)
    for target in targets:  # before any model is loaded
        check_writable(target, folder=not options.multilabel)
    segmenter = Segmenter(options=options, progress=reporter.tiles, download_reporter=reporter)
    if not options.multilabel:  # a mask file must not be an input either
        names = [f"{n}.nii.gz" for n in segmenter.labels.values()]
        check_not_input([t / n for t in targets for n in names], cases)
    demo = options.model_dir is None and options.task == "demo"
    results: list[CaseResult] = []
    for index, (case, target) in enumerate(zip(cases, targets, strict=True)):
        reporter.case_started(index, len(cases), case)
        started = time.perf_counter()
        image = read_any(case, series_uid=options.series_uid)
        if segmenter.expects_ct:
            check_ct(image, where=f"'{case}'", force=options.force)
        log.info(
            "%s: %s voxels, spacing %s mm, orientation %s", case,
            "x".join(map(str, image.shape)), "x".join(f"{v:.3g}" for v in image.spacing_mm),
            "".join(image.orientation),
        )  # fmt: skip
        if demo and not is_phantom_file(case):
            reporter.notice(DEMO_WARNING)
            demo = False  # once per run
        labels = segmenter(image)
        header = case if _is_nifti(case) else None
        if options.multilabel:
            written = [write_label_map(labels, target, header_from=header)]
        else:
            written = write_mask_folder(labels, target, labels=segmenter.labels, header_from=header)
        elapsed_s = time.perf_counter() - started
        result = CaseResult(case, target, tuple(written), len(segmenter.labels), elapsed_s)
        log.info("%s: %d structures found, %.1f s", case, len(labels.present_labels()), elapsed_s)
        results.append(result)
        reporter.case_finished(result)
    return RunResult(tuple(results))
