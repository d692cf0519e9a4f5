"""Run a cohort: every scan of a manifest -> statistics in `STUDY/study.duckdb`, in parallel.

Execution uses Dask distributed. By default a `LocalCluster(n_workers=N, threads_per_worker=1,
processes=True)` on this machine (loopback only); `scheduler=ADDRESS` connects to a running
cluster instead, e.g. one on Slurm started with dask-jobqueue:

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=8, processes=1, memory="32GB", walltime="04:00:00",
                           job_extra_directives=["--gres=gpu:1"])
    cluster.scale(jobs=10)
    print(cluster.scheduler_address)   # -> totalseg study run ... --scheduler tcp://...:8786

(each Slurm job needs totalseg installed and the scan paths visible). `workers=0` runs every scan
in this process without Dask (debugging, tiny cohorts).

Workers only compute and return results; the client alone writes the database, one transaction
per scan as results stream in (`as_completed`). A rerun skips finished scans. A worker process
that dies is replaced by the cluster and its scan is retried; a scan that keeps killing workers
is recorded as failed (retryable), and the run goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from totalseg.errors import ConfigError
from totalseg.study.manifest import ScanSpec, read_manifest
from totalseg.study.store import ResultStore, ScanResult
from totalseg.study.worker import PipelineSegmenterFactory, SegmenterFactory, process_scan

__all__ = ["ProgressEvent", "StudyConfig", "StudySummary", "run_study"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyConfig:
    """How a cohort is run. `workers=0`: in this process, no Dask."""

    task: str = "total-fast"
    device: str = "auto"
    model_dir: str | None = None
    from_segmentations: bool = False
    border_voxels: int = 3
    workers: int = 2
    scheduler: str | None = None
    retry_failed: bool = False
    export_parquet: bool = True

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError(f"Expected workers >= 0, got {self.workers}.")
        if self.border_voxels < 0:
            raise ConfigError(f"Expected border_voxels >= 0, got {self.border_voxels}.")


@dataclass(frozen=True)
class ProgressEvent:
    """One scan finished (or, with scan_id None, the run started with n_total to do)."""

    n_done: int
    n_total: int
    scan_id: str | None = None
    status: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class StudySummary:
    n_scans: int
    n_skipped: int
    n_ok: int
    n_failed: int
    elapsed_s: float
    database: Path
    counts: dict[str, int]


def run_study(
    cohort: str | os.PathLike[str] | Sequence[ScanSpec],
    out_dir: str | os.PathLike[str],
    *,
    config: StudyConfig = StudyConfig(),
    segmenter_factory: SegmenterFactory | None = None,
    seg_column: str = "seg_path",
    progress: Callable[[ProgressEvent], None] | None = None,
) -> StudySummary:
    """Measure every unfinished scan of the cohort into `out_dir/study.duckdb`."""
    start = time.perf_counter()
    specs = (
        list(cohort)
        if not isinstance(cohort, (str, os.PathLike))
        else read_manifest(cohort, seg_column=seg_column)
    )
    factory = _factory(config, segmenter_factory)
    prepare = getattr(factory, "prepare", None)
    if prepare is not None:  # unusable task or missing weights: stop before any scan
        prepare()
    with ResultStore(out_dir) as store:
        store.check_settings(_settings(config, factory))
        done = store.finished_ids(retry_failed=config.retry_failed)
        todo = [s for s in specs if s.scan_id not in done]
        log.info(
            "%d scans, %d already finished, %d to do", len(specs), len(specs) - len(todo), len(todo)
        )
        if progress:
            progress(ProgressEvent(0, len(todo)))
        n_ok = n_failed = 0
        for spec, result in _execute(todo, factory, config):
            store.commit(spec, result)
            n_ok += result.status == "ok"
            n_failed += result.status != "ok"
            if progress:
                progress(
                    ProgressEvent(
                        n_ok + n_failed, len(todo), spec.scan_id, result.status, result.reason
                    )
                )
        if config.export_parquet:
            store.export_parquet()
        counts = store.counts()
    return StudySummary(
        n_scans=len(specs),
        n_skipped=len(specs) - len(todo),
        n_ok=n_ok,
        n_failed=n_failed,
        elapsed_s=time.perf_counter() - start,
        database=Path(out_dir) / "study.duckdb",
        counts=counts,
    )


def _factory(config: StudyConfig, given: SegmenterFactory | None) -> SegmenterFactory | None:
    if config.from_segmentations:
        if given is not None:
            raise ConfigError(
                "Expected either from_segmentations or a segmenter, got both; choose one."
            )
        return None
    if given is not None:
        return given
    return PipelineSegmenterFactory(config.task, config.device, config.model_dir)


def _settings(config: StudyConfig, factory: SegmenterFactory | None) -> dict[str, str]:
    model = f"model_dir:{config.model_dir}" if config.model_dir else f"model:{config.task}"
    source = "segmentations" if factory is None else model
    return {"source": source, "border_voxels": str(config.border_voxels)}


def _execute(
    todo: list[ScanSpec], factory: SegmenterFactory | None, config: StudyConfig
) -> Iterator[tuple[ScanSpec, ScanResult]]:
    if not todo:
        return
    if config.workers == 0 and config.scheduler is None:
        for spec in todo:
            yield (
                spec,
                process_scan(spec, segmenter_factory=factory, border_voxels=config.border_voxels),
            )
        return
    yield from _execute_dask(todo, factory, config)


def _execute_dask(
    todo: list[ScanSpec], factory: SegmenterFactory | None, config: StudyConfig
) -> Iterator[tuple[ScanSpec, ScanResult]]:
    from distributed import as_completed

    with _client(config) as client:
        by_key = {}
        futures = []
        for i, spec in enumerate(todo):
            future = client.submit(
                process_scan,
                spec,
                segmenter_factory=factory,
                border_voxels=config.border_voxels,
                key=f"totalseg-scan-{i}-{os.getpid()}-{time.time_ns()}",
                pure=False,
            )
            by_key[future.key] = spec
            futures.append(future)
        for future in as_completed(futures):
            spec = by_key[future.key]
            yield spec, _result_of(future, spec)
            future.release()


def _result_of(future: Any, spec: ScanSpec) -> ScanResult:
    from distributed import KilledWorker

    try:
        result = future.result()
    except KilledWorker as exc:
        log.info("scan %s killed its workers: %s", spec.scan_id, exc)
        return ScanResult(
            scan_id=spec.scan_id,
            status="failed",
            reason=f"worker process died while measuring this scan ({exc}); retried on rerun",
            retryable=True,
        )
    except Exception as exc:  # e.g. a result that cannot be deserialised: recorded, run goes on
        log.info("scan %s: %s: %s", spec.scan_id, type(exc).__name__, exc)
        return ScanResult(
            scan_id=spec.scan_id,
            status="failed",
            reason=f"{type(exc).__name__}: {exc}",
            retryable=True,
        )
    if not isinstance(result, ScanResult):  # pragma: no cover - process_scan always returns one
        raise TypeError(f"Expected a ScanResult from the worker, got {type(result).__name__}.")
    return result


@contextlib.contextmanager
def _client(config: StudyConfig) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "Expected dask.distributed for parallel studies, got an ImportError; install it "
            "with: pip install 'totalseg[study]' (or run with --workers 0)."
        ) from None
    import dask

    if config.scheduler is not None:
        with Client(config.scheduler) as client:
            yield client
        return
    # One task at a time per single-threaded worker: when a worker dies, only the scan it was
    # running is suspected (and retried), never scans merely queued behind it.
    with (
        dask.config.set({"distributed.scheduler.worker-saturation": 1.0}),
        LocalCluster(
            n_workers=max(1, config.workers),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
