"""`SegmentOptions`: everything `segment` can be told, one typed object for the CLI and the API.

Torch-free, so `totalseg --help` stays fast. The CLI builds one from its flags; the Python API
takes one (`Segmenter(options=...)`) or its fields as keywords (`segment(ct, task="total-fast")`).
Each field is interpreted in its own layer: what to run by `pipeline`, how to run it (device,
precision, tiles, threads) only by `inference/`, what to write by `run`/`io`. Values are checked
here on creation, so a bad option fails before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from totalseg.errors import ConfigError

__all__ = ["DEFAULT_MIN_BLOB_MM3", "SegmentOptions", "option_names", "speed_task"]

#: the reference tool's threshold when `--remove_small_blobs` is given without a value
DEFAULT_MIN_BLOB_MM3 = 200.0


@dataclass(frozen=True)
class SegmentOptions:
    """Options of one segmentation run (a task or a model folder, applied to every input).

    What to run
        task: a named model set (`totalseg info tasks`). model_dir: a bare nnU-Net model folder
        instead (its labels come from its dataset.json). roi_subset: keep only these structures
        (on `total`/`total-fast` the low-res crop model first finds their box, see `roi_crop`).
    How to run (interpreted by `inference/`)
        device: auto, cpu, cuda, cuda:N or mps. parity: nnU-Net's arithmetic bit for bit.
        tile_step: sliding-window step as a fraction of the patch (None: the task's).
        mirroring: test-time mirroring where the checkpoint allows it (None: off for named
        tasks, like the reference tool; on for a bare model folder, like nnU-Net).
        batch_size: tiles per forward pass (None: 1 on the CPU and in parity mode, 2 on GPUs).
        n_threads: torch intra-op threads (None: leave as is). channels_last, accumulate_fp32:
        fast-mode variants (see `inference.sliding_window`).
    Kernels (interpreted by `inference.kernels`)
        backend: auto, torch or openvino (auto: torch; see `inference.kernels` for why).
        precision: fp32, bf16 or fp16 (None: fp32 on the CPU, fp16 autocast on CUDA; bf16
        only on CPUs with bf16 instructions).
        Parity mode refuses OpenVINO and reduced precisions.
    Geometry and weights
        resampling_order: spline order of the reference zoom to the task spacing (1 = the
        reference's default since 2.16; 3 before; the nnU-Net 1 tasks `total-v1`/`-fast`
        always zoom as TotalSegmentator 1.5.x did: order 3, scipy's 'constant' mode).
        folds: folds of a model folder (None: all found). home: weights home folder (None:
        `$TOTALSEG_HOME` or the platform default).
        download: fetch the official weights of a task on first use when they are missing
        (never when `TOTALSEG_OFFLINE=1` is set).
        roi_crop: with a roi_subset, crop to the structures found by the task's low-res model
        first (the reference tool's behaviour). roi_crop_margin_mm: margin added on each side
        of that box (the reference's effective 20 mm).
    Speed (body-aware tile skipping)
        body_skip: skip sliding-window tiles that hold no voxel of an intensity-only body mask
        (`preprocess.body`); body voxels keep exactly their logits, the rest is background.
        None: on for named tasks, off for a bare model folder; always off under parity.
    Input
        series_uid: the DICOM SeriesInstanceUID to read when a folder holds several series.
    Reliability (bad input)
        force: segment an input that the CT plausibility check refuses (tiny, constant,
        MR-like or out-of-range intensities, see `preprocess.plausibility`); one warning
        line is logged instead.
    Outputs (interpreted by `run`)
        multilabel: one label file with a label table instead of a mask per structure.
    The reference tool's everyday options (its `--fast`, `--statistics`, ... with its meaning)
        fast, fastest: aliases of the task's 3 mm / 6 mm variant (`total` -> `total-fast` /
        `total-fastest`; `total_mr` -> `total_mr-fast`); refused with another task.
        body_seg: crop to the body (found from intensities, `preprocess.body`) before the model;
        the result is still on the full input grid (ignored where a roi/task crop applies).
        remove_small_blobs_mm3: per structure, drop connected components of at most this
        volume, on the model grid before upsampling (the reference's default value: 200).
        v1_order: label ids of the paper's 104-class v1 map (v2-only structures dropped).
        save_lowres: keep the result on the model grid (canonical RAS at the task spacing)
        instead of resampling it to the input grid (named tasks without a crop only).
        (interpreted by `run`) statistics: write the reference's `statistics.json` and the
        richer `statistics.csv` beside the output; stats_include_incomplete: report structures
        that touch the image border too (the reference's `-sii`; default: 0.0 for those).
        preview: write `preview_<task>.png` (three planes with the labels and a legend).
        skip_saving: write no segmentation files (with statistics or preview).
        report: write a JSON run manifest to this path (versions, device, options, timings).
    DICOM outputs (interpreted by `run`, written by `io.dicom_seg` / `io.rtstruct`)
        output_types: what to write, one or more of "nifti" (the masks or --ml file),
        "dicom-seg" and "rtstruct" (need a DICOM input; on the series' own slices). With
        several, `-o` names the NIfTI output and the DICOM files land beside it
        (`<stem>.seg.dcm`, `<stem>.rtstruct.dcm`); alone, `-o` is the DICOM file.
    """

    # what to run
    task: str = "total"
    model_dir: Path | None = None
    roi_subset: tuple[str, ...] | None = None
    # how to run
    device: str = "auto"
    parity: bool = False
    tile_step: float | None = None
    mirroring: bool | None = None
    batch_size: int | None = None
    n_threads: int | None = None
    channels_last: bool = False
    accumulate_fp32: bool = False
    # kernels: back-end library and number format of the network (inference.kernels)
    backend: str = "auto"
    precision: str | None = None
    # geometry and weights
    resampling_order: int = 1
    folds: tuple[int | str, ...] | None = None
    home: Path | None = None
    download: bool = True
    roi_crop: bool = True
    roi_crop_margin_mm: float = 20.0
    # speed: body-aware tile skipping
    body_skip: bool | None = None
    # input
    series_uid: str | None = None
    # reliability: proceed past the CT plausibility check (preprocess.plausibility)
    force: bool = False
    # outputs
    multilabel: bool = False
    # the reference tool's everyday options (issue 12): speed aliases, postprocessing, extras
    fast: bool = False
    fastest: bool = False
    body_seg: bool = False
    remove_small_blobs_mm3: float | None = None
    v1_order: bool = False
    save_lowres: bool = False
    statistics: bool = False
    stats_include_incomplete: bool = False
    preview: bool = False
    skip_saving: bool = False
    report: Path | None = None
    # DICOM outputs
    output_types: tuple[str, ...] = ("nifti",)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # normalise sequences and paths once, on creation
        if self.model_dir is not None:
            set_(self, "model_dir", Path(self.model_dir))
        if self.home is not None:
            set_(self, "home", Path(self.home))
        if self.roi_subset is not None:
            set_(self, "roi_subset", _names(self.roi_subset))
        if self.folds is not None:
            set_(self, "folds", tuple(self.folds))
        set_(self, "output_types", _output_types(self.output_types))
        if not isinstance(self.task, str) or not self.task:
            raise ConfigError(
                f"Expected a task name, got {self.task!r}; see `totalseg info tasks`."
            )
        if self.tile_step is not None and not 0 < float(self.tile_step) <= 1:
            raise ConfigError(f"Expected a tile step in (0, 1], got {self.tile_step}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"Expected a tile batch size >= 1, got {self.batch_size}.")
        if self.parity and self.batch_size not in (None, 1):
            raise ConfigError(f"Expected batch size 1 in parity mode, got {self.batch_size}.")
        if self.parity and (self.channels_last or self.accumulate_fp32):
            raise ConfigError(
                "Expected nnU-Net's arithmetic in parity mode, got channels_last or "
                "accumulate_fp32; drop them or parity."
            )
        if self.parity and self.body_skip:
            raise ConfigError(
                "Expected nnU-Net's full tile grid in parity mode, got body_skip=True; drop "
                "--body-skip or --parity."
            )
        _check_kernels(self.backend, self.precision, parity=self.parity)
        if self.n_threads is not None and self.n_threads < 1:
            raise ConfigError(f"Expected n_threads >= 1, got {self.n_threads}.")
        if not 0 <= self.resampling_order <= 5:
            raise ConfigError(f"Expected a resampling order in 0..5, got {self.resampling_order}.")
        if not self.roi_crop_margin_mm >= 0:
            raise ConfigError(f"Expected roi_crop_margin_mm >= 0, got {self.roi_crop_margin_mm}.")
        self._check_everyday_options()

    def _check_everyday_options(self) -> None:
        """The reference tool's everyday options: resolve --fast/--fastest, refuse nonsense."""
        set_ = object.__setattr__
        if self.report is not None:
            set_(self, "report", Path(self.report))
        if self.fast or self.fastest:
            set_(self, "task", speed_task(self.task, fast=self.fast, fastest=self.fastest,
                                          model_dir=self.model_dir))  # fmt: skip
        blobs = self.remove_small_blobs_mm3
        if blobs is not None and not float(blobs) >= 0:
            raise ConfigError(f"Expected remove_small_blobs_mm3 >= 0, got {blobs}.")
        if self.stats_include_incomplete and not self.statistics:
            raise ConfigError(
                "Expected statistics=True with stats_include_incomplete, got statistics off; "
                "add --statistics."
            )
        if self.save_lowres and set(self.output_types) - {"nifti"}:
            raise ConfigError(
                "Expected NIfTI output with save_lowres (DICOM outputs lie on the source "
                "series' slices), got output types "
                f"{', '.join(self.output_types)}; drop --save-lowres or the DICOM type."
            )

    @property
    def skips_outside_body(self) -> bool:
        """Whether tiles outside the body are skipped (`body_skip` with its default resolved)."""
        if self.parity:
            return False
        if self.body_skip is None:
            return self.model_dir is None
        return self.body_skip

    def replace(self, **changes: Any) -> SegmentOptions:
        """A copy with some fields changed; unknown names are refused with a suggestion."""
        check_names(changes)
        return dataclasses.replace(self, **changes)

    def for_crop_model(self) -> SegmentOptions:
        """The options of a low-res crop model: this run's device and weights, none of its
        roi, folds, speed alias or postprocessing and output choices."""
        return self.replace(
            roi_subset=None, folds=None, fast=False, fastest=False, body_seg=False,
            remove_small_blobs_mm3=None, v1_order=False, save_lowres=False,
        )  # fmt: skip

    @classmethod
    def from_fields(cls, values: Mapping[str, Any]) -> SegmentOptions:
        """Build from keyword values (e.g. `segment(ct, **values)`), refusing unknown names."""
        check_names(values)
        return cls(**values)


def speed_task(task: str, *, fast: bool, fastest: bool, model_dir: Path | None = None) -> str:
    """The task that `--fast` / `--fastest` stand for: `<base>-fast` / `<base>-fastest` of the
    given task (which may already be that variant); anything else is a contradiction."""
    from totalseg.models.tasks import list_tasks

    flag = "--fastest" if fastest else "--fast"
    if fast and fastest:
        raise ConfigError("Expected one of --fast and --fastest, got both; pick one.")
    if model_dir is not None:
        raise ConfigError(f"Expected a named task with {flag}, got a model folder; drop {flag}.")
    base = task.removesuffix("-fastest").removesuffix("-fast")
    wanted = f"{base}{flag[1:]}"
    known = {t.name for t in list_tasks()}
    if wanted not in known:
        raise ConfigError(
            f"Expected a task with a {flag[2:]} variant with {flag}, got --task {task} (there is "
            f"no {wanted!r}); drop {flag} or use e.g. --task total."
        )
    if task not in (base, wanted):
        raise ConfigError(
            f"Expected {flag} to agree with --task, got --task {task} which contradicts it "
            f"({flag} means --task {wanted}); drop one of them."
        )
    return wanted


def option_names() -> list[str]:
    """The public field names of `SegmentOptions`."""
    return [f.name for f in fields(SegmentOptions)]


def check_names(values: Mapping[str, Any]) -> None:
    known = option_names()
    for name in values:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"Unknown segment option {name!r}.{hint} Options: {', '.join(known)}."
            )


OUTPUT_TYPES = ("nifti", "dicom-seg", "rtstruct")


def _output_types(values: Sequence[str] | str) -> tuple[str, ...]:
    """Output types from a sequence ('nifti,rtstruct' entries split), repeats dropped."""
    items = [values] if isinstance(values, str) else list(values)
    found = tuple(dict.fromkeys(t.strip() for v in items for t in str(v).split(",") if t.strip()))
    unknown = [t for t in found if t not in OUTPUT_TYPES]
    if unknown or not found:
        raise ConfigError(
            f"Expected output types among {', '.join(OUTPUT_TYPES)}, got "
            f"{', '.join(unknown) or 'none'}; e.g. --output-type dicom-seg."
        )
    return found


BACKENDS = ("auto", "torch", "openvino")
PRECISIONS = ("fp32", "bf16", "fp16")


def _check_kernels(backend: str, precision: str | None, *, parity: bool) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"Expected a backend among {', '.join(BACKENDS)}, got {backend!r}.")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"Expected a precision among {', '.join(PRECISIONS)}, got {precision!r}.")
    if parity and (backend == "openvino" or precision in ("bf16", "fp16")):
        raise ConfigError(
            f"Expected torch kernels in nnU-Net's precision in parity mode, got backend "
            f"{backend} and precision {precision}; drop --parity or them."
        )


def _names(values: Sequence[str] | str) -> tuple[str, ...]:
    """Structure names from a sequence; 'liver,spleen' entries are split at commas."""
    items = [values] if isinstance(values, str | os.PathLike) else list(values)
    names = tuple(n.strip() for v in items for n in str(v).split(",") if n.strip())
    if not names:
        raise ConfigError("Expected at least one structure name in roi_subset, got none.")
    return names
