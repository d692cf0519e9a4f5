"""The results of a study in one embedded DuckDB database, `STUDY/study.duckdb`.

Tables:
- `scans`: one row per finished scan (status `ok` or `failed`, reason, timings, subject data);
- `structure_stats`: one row per scan x structure (primary key (scan_id, structure)), the
  columns of `totalseg.stats.RECORD_COLUMNS`, NULL where a structure is absent;
- `study_meta`: key/value settings of the study (task, mode), checked when a run resumes.

Each scan is committed in ONE transaction (its old rows deleted, its new rows and its `scans`
row inserted), so a killed run keeps every committed scan and never holds half of one. Only
one process (the client of a run) opens the database.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from totalseg.errors import ConfigError, InputError
from totalseg.stats.table import RECORD_COLUMNS
from totalseg.study.manifest import ScanSpec

__all__ = ["DB_NAME", "ResultStore", "ScanResult"]

log = logging.getLogger(__name__)

DB_NAME = "study.duckdb"

_STAT_TYPES = {
    "structure": "VARCHAR NOT NULL",
    "label": "INTEGER",
    "status": "VARCHAR NOT NULL",
    "n_voxels": "BIGINT",
    **{c: "INTEGER" for c in RECORD_COLUMNS if c.startswith("bbox_") and not c.endswith("_mm")},
}

_SCAN_COLUMNS: dict[str, str] = {
    "scan_id": "VARCHAR PRIMARY KEY",
    "subject_id": "VARCHAR",
    "path": "VARCHAR",
    "seg_path": "VARCHAR",
    "age": "DOUBLE",
    "sex": "VARCHAR",
    "covariates_json": "VARCHAR",
    "status": "VARCHAR NOT NULL",
    "reason": "VARCHAR",
    "retryable": "BOOLEAN",
    "n_structures": "INTEGER",
    "n_present": "INTEGER",
    "shape": "VARCHAR",
    "spacing_mm": "VARCHAR",
    "read_s": "DOUBLE",
    "segment_s": "DOUBLE",
    "stats_s": "DOUBLE",
    "elapsed_s": "DOUBLE",
    "worker": "VARCHAR",
    "finished_at": "TIMESTAMP",
}


@dataclass(frozen=True)
class ScanResult:
    """What a worker sends back for one scan: its statistics records, or why it failed."""

    scan_id: str
    status: str  # "ok" | "failed"
    reason: str | None = None
    retryable: bool = False
    records: tuple[dict[str, Any], ...] = ()
    shape: tuple[int, ...] | None = None
    spacing_mm: tuple[float, ...] | None = None
    timings_s: Mapping[str, float] = field(default_factory=dict)
    worker: str | None = None

    @property
    def n_present(self) -> int:
        return sum(1 for r in self.records if r["status"] != "absent")


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "Expected the 'duckdb' package for studies, got an ImportError; "
            "install it with: pip install 'totalseg[study]'."
        ) from None
    return duckdb


class ResultStore:
    """Open (create) `STUDY/study.duckdb`; use as a context manager or call close()."""

    def __init__(self, folder: str | os.PathLike[str], *, read_only: bool = False) -> None:
        duckdb = _duckdb()
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        if read_only and not self.path.is_file():
            raise InputError(
                f"Expected a study database at '{self.path}', got none; "
                "run `totalseg study run` first or check the folder."
            )
        if not read_only:
            self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            raise InputError(
                f"Expected to open the study database '{self.path}', got: {exc}; "
                "is another run using this study folder?"
            ) from None
        if not read_only:
            self._create()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def _create(self) -> None:
        stat_cols = ", ".join(f"{c} {_STAT_TYPES.get(c, 'DOUBLE')}" for c in RECORD_COLUMNS)
        scan_cols = ", ".join(f"{c} {t}" for c, t in _SCAN_COLUMNS.items())
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS study_meta (key VARCHAR PRIMARY KEY, value VARCHAR)"
        )
        self.con.execute(f"CREATE TABLE IF NOT EXISTS scans ({scan_cols})")
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS structure_stats (scan_id VARCHAR NOT NULL, "
            f"{stat_cols}, PRIMARY KEY (scan_id, structure))"
        )

    def check_settings(self, settings: Mapping[str, str]) -> None:
        """Record the study's settings, or check a resumed run uses the same ones."""
        stored = dict(self.con.execute("SELECT key, value FROM study_meta").fetchall())
        for key, value in settings.items():
            if key in stored and stored[key] != value:
                raise ConfigError(
                    f"Expected {key}={stored[key]!r} as the study in '{self.folder}' was started "
                    f"with, got {value!r}; resume with the same settings or use a new --out."
                )
        new = [(k, v) for k, v in settings.items() if k not in stored]
        if new:
            self.con.executemany("INSERT INTO study_meta VALUES (?, ?)", new)

    def finished_ids(self, *, retry_failed: bool = False) -> set[str]:
        """Scan ids a resumed run skips: ok ones, and failed ones unless retryable/retried."""
        rows = self.con.execute("SELECT scan_id, status, retryable FROM scans").fetchall()
        return {
            sid
            for sid, status, retryable in rows
            if status == "ok" or not (retry_failed or bool(retryable))
        }

    def commit(self, spec: ScanSpec, result: ScanResult) -> None:
        """Replace the scan's rows with the result's, in one transaction."""
        scan_row = _scan_row(spec, result)
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM structure_stats WHERE scan_id = ?", [spec.scan_id])
            self.con.execute("DELETE FROM scans WHERE scan_id = ?", [spec.scan_id])
            if result.records:
                self._insert_stats(spec.scan_id, result.records)
            marks = ", ".join("?" for _ in scan_row)
            self.con.execute(
                f"INSERT INTO scans ({', '.join(scan_row)}) VALUES ({marks})",
                list(scan_row.values()),
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _insert_stats(self, scan_id: str, records: Iterable[dict[str, Any]]) -> None:
        import pyarrow as pa

        recs = list(records)
        columns = {"scan_id": pa.array([scan_id] * len(recs), pa.string())}
        for col in RECORD_COLUMNS:
            columns[col] = pa.array([r[col] for r in recs], from_pandas=True)
        self.con.register("_batch", pa.table(columns))
        try:
            names = ", ".join(("scan_id", *RECORD_COLUMNS))
            self.con.execute(f"INSERT INTO structure_stats ({names}) SELECT {names} FROM _batch")
        finally:
            self.con.unregister("_batch")

    def counts(self) -> dict[str, int]:
        """Number of scans by status, and of structure rows."""
        out = dict(
            self.con.execute("SELECT status, count(*) FROM scans GROUP BY status").fetchall()
        )
        out["structure_rows"] = self.con.execute("SELECT count(*) FROM structure_stats").fetchone()[
            0
        ]
        return {str(k): int(v) for k, v in out.items()}

    def export_parquet(self) -> list[Path]:
        """Write `scans.parquet` and `structure_stats.parquet` beside the database, atomically."""
        written = []
        for table, order in (("scans", "scan_id"), ("structure_stats", "scan_id, structure")):
            target = self.folder / f"{table}.parquet"
            tmp = self.folder / f".{table}.parquet.tmp"
            self.con.execute(
                f"COPY (SELECT * FROM {table} ORDER BY {order}) TO '{_sql_path(tmp)}' "
                "(FORMAT PARQUET)"
            )
            os.replace(tmp, target)
            written.append(target)
        return written


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _scan_row(spec: ScanSpec, result: ScanResult) -> dict[str, Any]:
    import datetime as dt
    import math

    t = result.timings_s
    return {
        "scan_id": spec.scan_id,
        "subject_id": spec.subject_id,
        "path": spec.path,
        "seg_path": spec.seg_path,
        "age": None if math.isnan(spec.age) else spec.age,
        "sex": spec.sex,
        "covariates_json": json.dumps(dict(spec.covariates), sort_keys=True),
        "status": result.status,
        "reason": result.reason,
        "retryable": result.retryable,
        "n_structures": len(result.records),
        "n_present": result.n_present,
        "shape": None if result.shape is None else json.dumps(list(result.shape)),
        "spacing_mm": None if result.spacing_mm is None else json.dumps(list(result.spacing_mm)),
        "read_s": t.get("read_s"),
        "segment_s": t.get("segment_s"),
        "stats_s": t.get("stats_s"),
        "elapsed_s": t.get("elapsed_s"),
        "worker": result.worker,
        "finished_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
    }
