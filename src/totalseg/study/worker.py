"""What a worker does with one scan: read, segment (or read masks), measure, send back.

The segmenter is built by a factory (a picklable, hashable callable returning `image ->
LabelMap`) once per worker process and kept in a module-level cache, so a worker keeps its
models loaded across scans -- on a local cluster and on any Dask cluster alike. Tests pass a
fake factory; the default builds `totalseg.pipeline.Segmenter(task=..., device=...)`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from totalseg.errors import ConfigError, InputError, ModelError
from totalseg.image import Image, LabelMap
from totalseg.study.manifest import ScanSpec
from totalseg.study.store import ScanResult

__all__ = ["PipelineSegmenterFactory", "SegmenterFactory", "cached_segmenter", "process_scan"]

log = logging.getLogger(__name__)

Segment = Callable[[Image], LabelMap]
SegmenterFactory = Callable[[], Segment]

_SEGMENTERS: dict[Hashable, Segment] = {}


@dataclass(frozen=True)
class PipelineSegmenterFactory:
    """Builds the engine's `Segmenter` for a model set (or a model folder) and a device."""

    task: str = "total-fast"
    device: str = "auto"
    model_dir: str | None = None

    def prepare(self) -> None:
        """Fail fast, in the client before any scan or worker: the task exists and the weights
        of it (and of its crop task) are installed; missing official weights are downloaded
        here, once, unless TOTALSEG_OFFLINE is set."""
        from totalseg.models.release import ensure_model_folder
        from totalseg.models.tasks import get_task
        from totalseg.models.weights import resolve_model_dir

        if self.model_dir is not None:
            folder = resolve_model_dir(self.model_dir)
            if not (folder / "plans.json").is_file():
                raise ModelError(
                    f"Expected an nnU-Net model folder with plans.json at '{self.model_dir}', "
                    "found none; pass a trained model folder with --model-dir."
                )
            return
        todo = [self.task]
        while todo:
            spec = get_task(todo.pop())
            for dataset_id in spec.datasets:
                ensure_model_folder(dataset_id)
            if spec.crop is not None:
                todo.append(spec.crop.task)

    def __call__(self) -> Segment:
        from totalseg.pipeline import Segmenter

        segmenter: Segment = Segmenter(self.task, model_dir=self.model_dir, device=self.device)
        return segmenter


def cached_segmenter(factory: SegmenterFactory) -> Segment:
    """The segmenter of this process for `factory`, built on first use and then kept."""
    try:
        found = _SEGMENTERS.get(factory)
    except TypeError:
        raise ConfigError(
            f"Expected a hashable segmenter factory (e.g. a frozen dataclass), got "
            f"{type(factory).__name__}; models could not be kept loaded per worker."
        ) from None
    if found is None:
        log.info("building segmenter %r in process %d", factory, os.getpid())
        found = factory()
        _SEGMENTERS[factory] = found
    return found


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def process_scan(
    spec: ScanSpec,
    *,
    segmenter_factory: SegmenterFactory | None,
    border_voxels: int = 3,
) -> ScanResult:
    """Statistics of one scan; any error becomes a `failed` result with its reason.

    Without a factory, the masks at `spec.seg_path` are measured (`--from-segmentations`).
    """
    start = time.perf_counter()
    timings: dict[str, float] = {}
    try:
        table, grid = _measure(spec, segmenter_factory, border_voxels, timings)
    except Exception as exc:  # recorded with its reason; the run goes on
        # reported once, by the caller's progress (the CLI prints it); logged for -v only
        log.info("scan %s failed: %s: %s", spec.scan_id, type(exc).__name__, exc)
        timings["elapsed_s"] = time.perf_counter() - start
        return ScanResult(
            scan_id=spec.scan_id,
            status="failed",
            reason=f"{type(exc).__name__}: {exc}",
            timings_s=timings,
            worker=_worker_name(),
        )
    timings["elapsed_s"] = time.perf_counter() - start
    return ScanResult(
        scan_id=spec.scan_id,
        status="ok",
        records=tuple(table),
        shape=grid[0],
        spacing_mm=grid[1],
        timings_s=timings,
        worker=_worker_name(),
    )


def _measure(
    spec: ScanSpec,
    factory: SegmenterFactory | None,
    border_voxels: int,
    timings: dict[str, float],
) -> tuple[list[dict[str, Any]], tuple[tuple[int, ...], tuple[float, ...]]]:
    from totalseg.io import read_any
    from totalseg.preprocess.plausibility import check_ct
    from totalseg.stats import compute_statistics, read_segmentation

    t = time.perf_counter()
    image = read_any(spec.path)
    check_ct(image, where=f"scan {spec.scan_id!r} ('{spec.path}')")
    if factory is None:
        if spec.seg_path is None:
            raise InputError(
                f"Expected a segmentation path for scan {spec.scan_id!r} "
                "(--from-segmentations), got an empty cell; fill the segmentation column."
            )
        label_map = read_segmentation(spec.seg_path)
        timings["read_s"] = time.perf_counter() - t
    else:
        timings["read_s"] = time.perf_counter() - t
        t = time.perf_counter()
        label_map = cached_segmenter(factory)(image)
        timings["segment_s"] = time.perf_counter() - t
    t = time.perf_counter()
    table = compute_statistics(image, label_map, border_voxels=border_voxels)
    timings["stats_s"] = time.perf_counter() - t
    if not table.present():
        raise InputError(
            f"Expected at least one segmented structure in scan {spec.scan_id!r}, got an empty "
            "segmentation; check the scan (not a CT? wrong body region?)."
        )
    return table.to_records(), (image.shape, image.spacing_mm)
