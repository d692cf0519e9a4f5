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

DICOM outputs (`output_types` dicom-seg, rtstruct; DICOM inputs only): alone, one type for one
input writes exactly `output`; otherwise each lands beside the case's NIfTI target as
`<stem>.seg.dcm` / `<stem>.rtstruct.dcm` (`dicom_targets`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from totalseg.errors import InputError
from totalseg.image import Image, LabelMap
from totalseg.models.release import DownloadReporter
from totalseg.options import SegmentOptions
from totalseg.timings import StageTimes

if TYPE_CHECKING:
    from totalseg.pipeline import Segmenter

__all__ = [
    "CaseFailure",
    "CaseResult",
    "RunReporter",
    "RunResult",
    "case_name",
    "dicom_targets",
    "expand_inputs",
    "output_targets",
    "run_segment",
]

_NIFTI = (".nii.gz", ".nii")
_DICOM_SUFFIX = {"dicom-seg": "seg.dcm", "rtstruct": "rtstruct.dcm"}
log = logging.getLogger(__name__)

#: said once per run when the demo model segments a scan that is not a totalseg phantom
DEMO_WARNING = (
    "the demo model was trained on synthetic phantoms only and is unreliable on real scans; "
    "for real scans get the official weights: `totalseg weights download total` (or "
    "`totalseg weights import ZIP`), then `--task total`."
)


@dataclass(frozen=True)
class CaseResult:
    """One input and what was written for it (`target`: the output file or mask folder);
    `times`: seconds per stage (read, ..., write)."""

    source: Path
    target: Path
    outputs: tuple[Path, ...]
    n_structures: int
    elapsed_s: float
    times: StageTimes | None = None


@dataclass(frozen=True)
class CaseFailure:
    """An input that could not be segmented, and why (one line)."""

    source: Path
    message: str


@dataclass(frozen=True)
class RunResult:
    """Every case of a run, in input order; `failures` are the inputs that were skipped."""

    cases: tuple[CaseResult, ...]
    failures: tuple[CaseFailure, ...] = ()


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

    def case_failed(self, failure: CaseFailure) -> None:
        """A case of several could not be read or segmented; the run goes on."""
        log.error("%s: %s", failure.source, failure.message)


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


def dicom_targets(target: Path, output_types: Sequence[str], *, exact: bool) -> dict[str, Path]:
    """The DICOM file of each DICOM output type: `target` itself when `exact` (one input, one
    type, no NIfTI), else `<stem>.seg.dcm` / `<stem>.rtstruct.dcm` beside `target`."""
    kinds = [t for t in output_types if t in _DICOM_SUFFIX]
    if exact and len(kinds) == 1:
        return {kinds[0]: target}
    stem = case_name(target)
    for suffix in (".dcm",):
        stem = stem[: -len(suffix)] if stem.lower().endswith(suffix) else stem
    return {kind: target.parent / f"{stem}.{_DICOM_SUFFIX[kind]}" for kind in kinds}


def _check_dicom_inputs(cases: Sequence[Path], options: SegmentOptions) -> None:
    kinds = [t for t in options.output_types if t in _DICOM_SUFFIX]
    niftis = [c for c in cases if _is_nifti(c)]
    if kinds and niftis:
        raise InputError(
            f"Expected a DICOM folder or zip as input for --output-type {kinds[0]}, got the "
            f"NIfTI file '{niftis[0]}'; DICOM outputs reference the source images, so pass the "
            "DICOM series (or use --output-type nifti)."
        )


def _write_dicom(
    case: Path, image: Image, labels: LabelMap, paths: dict[str, Path], options: SegmentOptions,
    reporter: RunReporter,
) -> list[Path]:  # fmt: skip
    from totalseg.io.dicom_seg import write_dicom_seg
    from totalseg.io.dicom_source import source_series
    from totalseg.io.rtstruct import write_rtstruct

    if not paths:
        return []
    if not labels.present_labels():
        reporter.notice(f"no structure found in '{case}'; no DICOM-SEG/RTSTRUCT written.")
        return []
    source = source_series(case, image, series_uid=options.series_uid)
    task = options.task if options.model_dir is None else options.model_dir.name
    writers = {"dicom-seg": write_dicom_seg, "rtstruct": write_rtstruct}
    return [writers[kind](labels, source, path, task=task) for kind, path in paths.items()]


def run_segment(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: SegmentOptions | None = None,
    *,
    reporter: RunReporter | None = None,
) -> RunResult:
    """Segment every input with one model set and write its outputs; returns what was written.

    Beside the segmentation (none with `skip_saving`): statistics and a preview where asked
    (`sidecars`), and after the last case the run manifest (`options.report`, `run_report`).
    Outputs are checked before any model is loaded: never an input, always writable.
    """
    from totalseg.io import is_phantom_file
    from totalseg.io.outputs import check_not_input, check_writable
    from totalseg.pipeline import Segmenter

    options = options or SegmentOptions()
    reporter = reporter or RunReporter()
    cases = expand_inputs(inputs)
    _check_dicom_inputs(cases, options)
    nifti = "nifti" in options.output_types
    targets = output_targets(cases, Path(output), multilabel=options.multilabel and nifti)
    exact = len(cases) == 1 and not nifti
    check_not_input(targets, cases)
    for target in targets:  # before any model is loaded
        check_writable(target, folder=nifti and not options.multilabel)
    run_started = time.perf_counter()
    segmenter = Segmenter(options=options, progress=reporter.tiles, download_reporter=reporter)
    options = segmenter.options  # with the task that --fast / --fastest stand for
    if nifti and not options.multilabel:  # a mask file must not be an input either
        masks = [f"{n}.nii.gz" for n in segmenter.labels.values()]
        check_not_input([t / m for t in targets for m in masks], cases)
    demo = options.model_dir is None and options.task == "demo"
    results: list[CaseResult] = []
    failures: list[CaseFailure] = []
    for index, (case, target) in enumerate(zip(cases, targets, strict=True)):
        reporter.case_started(index, len(cases), case)
        try:
            result = _segment_case(
                case,
                target,
                segmenter,
                options,
                reporter,
                warn_demo=demo,
                exact=exact,
                batch=len(cases) > 1,
            )
        except InputError as error:
            if len(cases) == 1:
                raise
            failure = CaseFailure(case, str(error))
            failures.append(failure)
            reporter.case_failed(failure)
            continue
        demo = demo and is_phantom_file(case)  # the demo warning is said once per run
        results.append(result)
        reporter.case_finished(result)
    if options.report is not None:
        _write_report(segmenter, results, time.perf_counter() - run_started)
    if failures:
        names = ", ".join(f.source.name for f in failures[:3])
        names += ", ..." if len(failures) > 3 else ""
        raise InputError(
            f"Expected every input to be segmented, got {len(failures)} of {len(cases)} failed "
            f"({names}; each reason above); {len(results)} finished and were written."
        )
    return RunResult(tuple(results), tuple(failures))


def _segment_case(
    case: Path,
    target: Path,
    segmenter: Segmenter,
    options: SegmentOptions,
    reporter: RunReporter,
    *,
    warn_demo: bool,
    exact: bool,
    batch: bool,
) -> CaseResult:
    """Read, segment and write one case (segmentation, then statistics/preview sidecars)."""
    from totalseg.io import is_phantom_file, read_any
    from totalseg.preprocess.plausibility import check_ct
    from totalseg.sidecars import write_sidecars

    started = time.perf_counter()
    image = read_any(case, series_uid=options.series_uid)
    read_s = time.perf_counter() - started
    if segmenter.expects_ct:
        check_ct(image, where=f"'{case}'", force=options.force)
    log.info(
        "%s: %s voxels, spacing %s mm, orientation %s", case,
        "x".join(map(str, image.shape)), "x".join(f"{v:.3g}" for v in image.spacing_mm),
        "".join(image.orientation),
    )  # fmt: skip
    if warn_demo and not is_phantom_file(case):
        reporter.notice(DEMO_WARNING)
    labels, times = segmenter.run(image)
    writing = time.perf_counter()
    written: list[Path] = []
    if not options.skip_saving:
        written = _write_segmentation(labels, case, target, options)
        dicom = dicom_targets(target, options.output_types, exact=exact)
        written += _write_dicom(case, image, labels, dicom, options, reporter)
        if "nifti" not in options.output_types and written:
            target = written[0]
    written += write_sidecars(
        segmenter.output_image(image), labels, target, options,
        task_name=_task_name(options), batch=batch,
    )  # fmt: skip
    elapsed_s = time.perf_counter() - started
    times = times.with_stages(read_s=read_s, write_s=time.perf_counter() - writing)
    log.info("%s: %d structures found, %.1f s", case, len(labels.present_labels()), elapsed_s)
    log.info("%s: %s", case, times.summary())
    return CaseResult(case, target, tuple(written), len(segmenter.labels), elapsed_s, times)


def _write_segmentation(
    labels: Any, case: Path, target: Path, options: SegmentOptions
) -> list[Path]:
    from totalseg.io import write_label_map, write_mask_folder

    if "nifti" not in options.output_types:
        return []
    header = case if _is_nifti(case) and not options.save_lowres else None
    if options.multilabel:
        return [write_label_map(labels, target, header_from=header)]
    return write_mask_folder(labels, target, labels=labels.labels, header_from=header)


def _task_name(options: SegmentOptions) -> str:
    return options.task if options.model_dir is None else options.model_dir.name


def _write_report(segmenter: Any, results: Sequence[CaseResult], elapsed_s: float) -> None:
    from totalseg.run_report import build_report, weights_provenance, write_report

    options = segmenter.options
    named = [(d, f) for d, f in segmenter.model_folders if d is not None]
    weights = weights_provenance([d for d, _ in named], [f for _, f in named], home=options.home)
    if options.model_dir is not None:
        weights = [{"dataset_id": None, "folder": str(f), "archive_sha256": None}
                   for _, f in segmenter.model_folders]  # fmt: skip
    report = build_report(
        options, cases=results, device=segmenter.device, weights=weights, elapsed_s=elapsed_s
    )
    write_report(report, options.report)
    log.info("wrote the run report %s", options.report)
