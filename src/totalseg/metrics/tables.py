"""The tidy results table (case, structure, metric, value, status) on disk, and its summary.

`metrics.csv` is written with the standard library; `metrics.parquet` needs pandas and pyarrow
(the `totalseg[tables]` extra). `summary.json` holds per-structure means with bootstrap CIs, the
overall (macro) mean per metric and the counts of excluded pairs. All writes are atomic.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.errors import InputError, MissingDependencyError
from totalseg.metrics.statistics import MeanCI, bootstrap_matrix

__all__ = [
    "COLUMNS",
    "metric_matrix",
    "read_table",
    "require_tables_extra",
    "summarize",
    "write_json",
    "write_table",
]

COLUMNS = ("case", "structure", "metric", "value", "status")
Row = tuple[str, str, str, float, str]


def require_tables_extra(*modules: str) -> None:
    """Import-check optional table/figure libraries; the error names the extra to install."""
    import importlib.util

    missing = [m for m in modules or ("pandas", "pyarrow") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"Expected the optional packages {', '.join(missing)}, got them missing; install "
            "them with: pip install 'totalseg[tables]'."
        )


def _atomic_write(path: Path, write: Any, *, text: bool = True) -> Path:
    from totalseg.io.outputs import atomic_file, output_errors

    with atomic_file(path, suffix=path.suffix) as tmp:
        if text:
            with output_errors(path), open(tmp, "w", encoding="utf-8", newline="") as f:
                write(f)
        else:
            write(tmp)
    return path


def write_table(rows: Iterable[Row], path: str | os.PathLike[str]) -> Path:
    """Write the tidy table as CSV (`.csv`) or Parquet (`.parquet`, needs pandas + pyarrow)."""
    target = Path(path)
    data = list(rows)
    if target.suffix == ".parquet":
        require_tables_extra("pandas", "pyarrow")
        import pandas as pd

        frame = pd.DataFrame(data, columns=list(COLUMNS))
        return _atomic_write(target, lambda tmp: frame.to_parquet(tmp, index=False), text=False)
    if target.suffix != ".csv":
        raise InputError(f"Expected a .csv or .parquet table path, got '{target}'.")

    def _write(f: Any) -> None:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows((c, s, m, repr(float(v)), st) for c, s, m, v, st in data)

    return _atomic_write(target, _write)


def read_table(path: str | os.PathLike[str]) -> list[Row]:
    """Read a table written by `write_table` (a results folder: its metrics.parquet or .csv)."""
    p = Path(path)
    if p.is_dir():
        parquet, csv_path = p / "metrics.parquet", p / "metrics.csv"
        p = csv_path if csv_path.is_file() else parquet
    if not p.is_file():
        raise InputError(
            f"Expected an evaluation results folder (metrics.csv) or table file, got '{path}' "
            "which has none; run `totalseg evaluate` first."
        )
    if p.suffix == ".parquet":
        require_tables_extra("pandas", "pyarrow")
        import pandas as pd

        frame = pd.read_parquet(p)
        records: Iterable[Sequence[Any]] = frame[list(COLUMNS)].itertuples(index=False)
    else:
        with p.open("r", encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or tuple(header) != COLUMNS:
                raise InputError(
                    f"Expected a table with columns {', '.join(COLUMNS)}, got {header} in '{p}'."
                )
            records = list(reader)
    return [(str(c), str(s), str(m), float(v), str(st)) for c, s, m, v, st in records]


def metric_matrix(
    rows: Iterable[Row], metric: str, cases: Sequence[str], structures: Sequence[str]
) -> np.ndarray:
    """(cases, structures) values of one metric; NaN where the table has none."""
    ci = {c: i for i, c in enumerate(cases)}
    si = {s: j for j, s in enumerate(structures)}
    out = np.full((len(cases), len(structures)), np.nan)
    for case, structure, m, value, _ in rows:
        if m == metric and case in ci and structure in si:
            out[ci[case], si[structure]] = value
    return out


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _ci_dict(m: MeanCI) -> dict[str, Any]:
    return {"mean": _num(m.mean), "ci_low": _num(m.low), "ci_high": _num(m.high), "n": m.n}


def _ordered(rows: Sequence[Row], index: int) -> list[str]:
    return list(dict.fromkeys(str(r[index]) for r in rows))


def summarize(
    rows: Sequence[Row],
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-structure and overall means with percentile-bootstrap CIs, and exclusion counts."""
    cases, structures, metrics = _ordered(rows, 0), _ordered(rows, 1), _ordered(rows, 2)
    per_structure: dict[str, dict[str, Any]] = {s: {} for s in structures}
    overall: dict[str, Any] = {}
    for metric in metrics:
        summary = bootstrap_matrix(
            metric_matrix(rows, metric, cases, structures),
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
        )
        for s, col in zip(structures, summary.columns, strict=True):
            per_structure[s][metric] = _ci_dict(col)
        overall[metric] = {
            **_ci_dict(summary.macro),
            "n_structures": int(sum(1 for col in summary.columns if col.n > 0)),
        }
    status: dict[str, dict[str, int]] = {s: {} for s in structures}
    excluded: dict[str, int] = {}
    first_metric = metrics[0] if metrics else None
    for _case, s, m, value, st in rows:
        if m == first_metric:
            status[s][st] = status[s].get(st, 0) + 1
        if math.isnan(value):
            excluded[m] = excluded.get(m, 0) + 1
    for s in structures:
        per_structure[s]["status_counts"] = status[s]
    totals: dict[str, int] = {}
    for counts in status.values():
        for st, n in counts.items():
            totals[st] = totals.get(st, 0) + n
    return {
        "n_cases": len(cases),
        "n_structures": len(structures),
        "bootstrap": {"n_resamples": n_resamples, "confidence": confidence, "seed": seed},
        "overall": overall,
        "status_counts": totals,
        "excluded_pairs": excluded,
        "structures": per_structure,
        "cases": cases,
    }


def write_json(data: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write JSON atomically (NaN is not valid JSON: pass None instead)."""
    return _atomic_write(
        Path(path), lambda f: f.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
    )
