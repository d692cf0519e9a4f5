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

__all__ = ["SegmentOptions", "option_names"]


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
        backend: auto, torch or openvino (auto: OpenVINO on x86-64 CPUs in fp32 when installed,
        else torch; see `inference.kernels` for the rule). precision: fp32, bf16 or fp16 (None:
        fp32 on the CPU, fp16 autocast on CUDA; bf16 only on CPUs with bf16 instructions).
        Parity mode refuses OpenVINO and reduced precisions.
    Geometry and weights
        resampling_order: spline order of the reference zoom to the task spacing (1 = the
        reference's default since 2.16; 3 before). folds: folds of a model folder (None: all
        found). home: weights home folder (None: `$TOTALSEG_HOME` or the platform default).
        download: fetch the official weights of a task on first use when they are missing
        (never when `TOTALSEG_OFFLINE=1` is set).
        roi_crop: with a roi_subset, crop to the structures found by the task's low-res model
        first (the reference tool's behaviour). roi_crop_margin_mm: margin added on each side
        of that box (the reference's effective 20 mm).
    Input
        series_uid: the DICOM SeriesInstanceUID to read when a folder holds several series.
    Outputs (interpreted by `run`)
        multilabel: one label file with a label table instead of a mask per structure.
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
    # input
    series_uid: str | None = None
    # outputs
    multilabel: bool = False

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
        _check_kernels(self.backend, self.precision, parity=self.parity)
        if self.n_threads is not None and self.n_threads < 1:
            raise ConfigError(f"Expected n_threads >= 1, got {self.n_threads}.")
        if not 0 <= self.resampling_order <= 5:
            raise ConfigError(f"Expected a resampling order in 0..5, got {self.resampling_order}.")
        if not self.roi_crop_margin_mm >= 0:
            raise ConfigError(f"Expected roi_crop_margin_mm >= 0, got {self.roi_crop_margin_mm}.")

    def replace(self, **changes: Any) -> SegmentOptions:
        """A copy with some fields changed; unknown names are refused with a suggestion."""
        check_names(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_fields(cls, values: Mapping[str, Any]) -> SegmentOptions:
        """Build from keyword values (e.g. `segment(ct, **values)`), refusing unknown names."""
        check_names(values)
        return cls(**values)


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
