"""`--report PATH`: a JSON manifest of one segmentation run, for provenance.

{"format": "totalseg-run-report", "version": 1, "created_utc", "versions": {totalseg, python,
numpy, torch, platform}, "device", "task", "model_dir", "weights": [{dataset_id, model,
folder, archive_sha256, sha256_source}], "options": {every SegmentOptions field},
"elapsed_s", "cases": [{source, target, outputs, n_structures, elapsed_s, ...}]}.

Each case entry holds every field of `run.CaseResult`, so fields added to it (per-stage timings)
appear without a change here; consumers must treat keys they do not know as optional.
`archive_sha256` is the official zip's hash where totalseg knows it: pinned in the package
(`sha256_source: "pinned"`, for the shipped demo model the checkpoint's own hash: "bundled"),
or recorded on download in the weights lock file ("lock"); else null.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from totalseg import __version__
from totalseg.options import SegmentOptions

__all__ = ["build_report", "weights_provenance", "write_report"]


def _jsonable(value: Any) -> Any:
    """Paths to strings, dataclasses and mappings to dicts, tuples to lists, NaN to null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def versions() -> dict[str, str | None]:
    import numpy

    torch = sys.modules.get("torch")
    return {
        "totalseg": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": None if torch is None else str(torch.__version__),
        "platform": platform.platform(),
    }


def weights_provenance(
    dataset_ids: Sequence[int], folders: Sequence[Path], *, home: Path | None
) -> list[dict[str, Any]]:
    """The hash of each part's weights where totalseg knows it (see the module docstring)."""
    from totalseg.models.lock import read_lock
    from totalseg.models.tasks import weights_entry
    from totalseg.models.weights import weights_dir

    lock = read_lock(weights_dir(home))
    out = []
    for dataset_id, folder in zip(dataset_ids, folders, strict=True):
        entry = weights_entry(dataset_id)
        locked = lock.get(f"{entry.folder}.zip")
        sha, source = entry.sha256, "bundled" if entry.format == "bundled" else "pinned"
        if sha is None and locked is not None:
            sha, source = locked.sha256, "lock"
        out.append({
            "dataset_id": dataset_id, "model": entry.model, "folder": str(folder),
            "archive_sha256": sha, "sha256_source": source if sha is not None else None,
        })  # fmt: skip
    return out


def build_report(
    options: SegmentOptions,
    *,
    cases: Sequence[Any],
    device: str,
    weights: Sequence[Mapping[str, Any]],
    elapsed_s: float,
) -> dict[str, Any]:
    """The manifest as a JSON-ready dict (`cases`: `run.CaseResult`s)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {
        "format": "totalseg-run-report",
        "version": 1,
        "created_utc": now.isoformat().replace("+00:00", "Z"),
        "versions": versions(),
        "device": device,
        "task": None if options.model_dir is not None else options.task,
        "model_dir": _jsonable(options.model_dir),
        "weights": [_jsonable(w) for w in weights],
        "options": _jsonable(options),
        "elapsed_s": round(elapsed_s, 3),
        "cases": [_jsonable(c) for c in cases],
    }


def write_report(report: Mapping[str, Any], path: Path) -> Path:
    """Write the manifest atomically."""
    from totalseg.stats.formats import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    return path
