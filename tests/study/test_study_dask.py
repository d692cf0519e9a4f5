"""Cohort runs on a local Dask cluster of 2 worker processes, with workers killed mid-run."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import dask
import distributed  # noqa: F401 - loads distributed's config defaults before dask.config.set
import duckdb
import numpy as np

from totalseg.image import Image, LabelMap
from totalseg.study import StudyConfig, run_study

# The fake segmenter below must travel to the worker processes by value (this test module is
# not importable there).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

LABELS = {1: "spleen", 5: "liver"}


@dataclass(frozen=True)
class KillingSegmenterFactory:
    """A fake model that kills its own worker process on poisoned scans.

    Scan i is recognised by its voxel [0, 0, 0] == -1000 - i. A file `always_<i>` in `poison`
    kills the process every time; `once_<i>` kills it once (the file is removed first).
    """

    poison: str

    def __call__(self) -> Callable[[Image], LabelMap]:
        poison = Path(self.poison)

        def segment(image: Image) -> LabelMap:
            index = -1000 - int(np.asarray(image.array)[0, 0, 0])
            once = poison / f"once_{index}"
            if once.exists():
                once.unlink()
                os._exit(1)
            if (poison / f"always_{index}").exists():
                os._exit(1)
            a = np.asarray(image.array)
            labels = np.where((a >= 52) & (a < 70), 5, np.where((a >= 38) & (a < 52), 1, 0))
            return LabelMap(labels.astype(np.uint8), image.affine, LABELS)

        return segment


def _counts(study: Path) -> tuple[dict[str, int], int, int]:
    con = duckdb.connect(str(study / "study.duckdb"), read_only=True)
    try:
        status = dict(con.execute("SELECT status, count(*) FROM scans GROUP BY status").fetchall())
        n_rows, n_unique = con.execute(
            "SELECT count(*), count(DISTINCT (scan_id, structure)) FROM structure_stats"
        ).fetchone()
        return status, n_rows, n_unique
    finally:
        con.close()


def test_local_cluster_survives_killed_workers_and_the_rerun_completes(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    cohort = make_cohort(8)
    poison = tmp_path / "poison"
    poison.mkdir()
    (poison / "once_2").touch()  # this worker dies once; Dask retries the scan elsewhere
    (poison / "always_5").touch()  # this scan kills every worker that tries it
    factory = KillingSegmenterFactory(str(poison))
    config = StudyConfig(workers=2)
    study = tmp_path / "study"
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        first = run_study(cohort, study, config=config, segmenter_factory=factory)
    assert (first.n_ok, first.n_failed) == (7, 1)
    assert not (poison / "once_2").exists()
    status, n_rows, n_unique = _counts(study)
    assert status == {"ok": 7, "failed": 1}
    assert n_rows == n_unique == 7 * 2
    con = duckdb.connect(str(study / "study.duckdb"), read_only=True)
    scan, reason, retryable = con.execute(
        "SELECT scan_id, reason, retryable FROM scans WHERE status = 'failed'"
    ).fetchone()
    workers = {
        w
        for (w,) in con.execute("SELECT DISTINCT worker FROM scans WHERE status = 'ok'").fetchall()
    }
    con.close()
    assert scan == "s0005" and "worker process died" in reason and retryable
    assert workers and None not in workers  # each result names the worker that measured it

    (poison / "always_5").unlink()  # the cause is fixed; the rerun retries the killed scan only
    second = run_study(cohort, study, config=config, segmenter_factory=factory)
    assert (second.n_skipped, second.n_ok, second.n_failed) == (7, 1, 0)
    status, n_rows, n_unique = _counts(study)
    assert status == {"ok": 8}
    assert n_rows == n_unique == 8 * 2
