"""Where the time of one case goes: elapsed seconds per pipeline stage, as a plain record.

`StageTimes` is what `run.CaseResult.times` carries (shown with `-v`, written to reports);
`Stopwatch` collects it while a case runs. Torch-free and numpy-free.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["PartTimes", "StageTimes", "Stopwatch"]

_STAGES = (
    "read_s", "orient_s", "resample_s", "body_s", "normalise_s", "network_s",
    "accumulation_s", "export_s", "merge_s", "restore_s", "write_s",
)  # fmt: skip


@dataclass(frozen=True)
class PartTimes:
    """One part model of a case: its sliding window (forward passes, logit accumulation), its
    export (logits back to labels) and how many tiles ran or were skipped outside the body."""

    model: str
    network_s: float
    accumulation_s: float
    export_s: float
    n_tiles_run: int
    n_tiles_skipped: int


@dataclass(frozen=True)
class StageTimes:
    """Elapsed seconds per stage of one case (0 where a stage did not run).

    read: input file to image. orient: to closest canonical RAS. resample: zoom to the task
    spacing. body: the body mask for tile skipping. normalise: nnU-Net's preprocessing (crop,
    normalisation, its resampling). network and accumulation: the sliding window, summed over
    parts (see `parts`). export: logits to labels. merge: parts into global ids. restore: back
    onto the input grid. write: output files.
    """

    read_s: float = 0.0
    orient_s: float = 0.0
    resample_s: float = 0.0
    body_s: float = 0.0
    normalise_s: float = 0.0
    network_s: float = 0.0
    accumulation_s: float = 0.0
    export_s: float = 0.0
    merge_s: float = 0.0
    restore_s: float = 0.0
    write_s: float = 0.0
    parts: tuple[PartTimes, ...] = ()

    @property
    def total_s(self) -> float:
        """The sum of the stages."""
        return sum(getattr(self, name) for name in _STAGES)

    def with_stages(self, **seconds: float) -> StageTimes:
        """A copy with stage seconds added (e.g. `read_s=` and `write_s=` measured by `run`)."""
        return replace(self, **{k: getattr(self, k) + float(v) for k, v in seconds.items()})

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for JSON reports): the stages, total_s, and one dict per part."""
        out: dict[str, Any] = {name: round(getattr(self, name), 4) for name in _STAGES}
        out["total_s"] = round(self.total_s, 4)
        out["parts"] = [{f.name: getattr(p, f.name) for f in fields(p)} for p in self.parts]
        return out

    def summary(self) -> str:
        """One line: the nonzero stages in pipeline order, e.g. 'read 0.4 s, network 12.0 s'."""
        shown = [
            f"{name[:-2]} {getattr(self, name):.2f} s" for name in _STAGES if getattr(self, name)
        ]
        return ", ".join(shown) or "no stages timed"


class Stopwatch:
    """Adds up seconds per stage (`with watch.stage("resample_s"): ...`) and part records."""

    def __init__(self) -> None:
        self._seconds = dict.fromkeys(_STAGES, 0.0)
        self._parts: list[PartTimes] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if name not in self._seconds:
            raise KeyError(f"Unknown stage {name!r}; stages: {', '.join(_STAGES)}.")
        started = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] += time.perf_counter() - started

    def add_part(self, part: PartTimes) -> None:
        self._parts.append(part)
        self._seconds["network_s"] += part.network_s
        self._seconds["accumulation_s"] += part.accumulation_s
        self._seconds["export_s"] += part.export_s

    def add(self, times: StageTimes) -> None:
        """Fold in the times of a nested run (e.g. the low-res crop model's)."""
        for name in _STAGES:
            self._seconds[name] += getattr(times, name)
        self._parts.extend(times.parts)

    def result(self) -> StageTimes:
        return StageTimes(**self._seconds, parts=tuple(self._parts))
