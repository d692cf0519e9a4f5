"""Synthetic cohorts: ground-truth volume and mean HU of every structure, per subject.

Stats mode tabulates, per subject x structure, the ground-truth volume (ml) and mean HU inside
the structure (no image is written): the truth that an analysis of the images should recover,
with the planted population effects (`effects.py`), the planted confounder (height falls with
age, `HeightTrend`; `height_trend=None` turns it off) and no others. Two engines:
- "model" (default): one template render per sex, every subject from the generator's own draws
  by formula (`cohort_model.py`); milliseconds per subject;
- "render": each subject's labels and noise-free, blur-free tissue HU rendered on a coarse
  whole-body grid; about a second per subject at 5 mm.
Image mode writes the dataset (`write_dataset`, height independent of age) and returns its
meta table.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from totalseg.errors import InputError
from totalseg.phantom.dataset import DatasetOptions, subject_seed, write_dataset
from totalseg.phantom.effects import (
    DEFAULT_EFFECTS,
    DEFAULT_HEIGHT_TREND,
    HeightTrend,
    PopulationEffect,
)
from totalseg.phantom.labels import MERGES, structure_names

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COHORT_COLUMNS", "ENGINES", "generate_cohort", "subject_statistics"]

COHORT_COLUMNS = ("image_id", "age", "sex", "height_cm", "bmi", "structure", "volume_ml",
                  "mean_hu")  # fmt: skip
ENGINES = ("model", "render")
ProgressFn = Callable[[int, int], None]
_HEART_PARTS = tuple(k for k, v in MERGES["v2"].items() if v == "heart")


def subject_statistics(
    seed: int,
    *,
    spacing_mm: float = 5.0,
    effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS,
    height_trend: HeightTrend | None = DEFAULT_HEIGHT_TREND,
    image_id: str = "",
) -> list[dict[str, Any]]:
    """Rows (one per structure, `heart` included) of one subject's rendered statistics."""
    from totalseg.phantom.cohort_model import cohort_params
    from totalseg.phantom.generate import build_body
    from totalseg.phantom.grid import RenderGrid, fov_extent_mm
    from totalseg.phantom.render import render_parts
    from totalseg.phantom.tissues import resolve

    params = cohort_params(seed, spacing_mm=spacing_mm, height_trend=height_trend)
    body = build_body(params, effects=effects)
    lo, hi = fov_extent_mm(params)
    grid = RenderGrid.covering(params, lo, hi, params.spacing_mm)
    labels, hu = render_parts(body.parts, grid, resolve(params, tuple(effects)), hard=True)
    assert hu is not None
    names = structure_names()
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=256)
    sums = np.bincount(flat, weights=hu.ravel().astype(np.float64), minlength=256)
    voxel_ml = float(np.prod(grid.spacing_mm)) / 1000.0
    per = {name: (float(counts[i]), float(sums[i])) for i, name in enumerate(names, start=1)}
    heart = [per[n] for n in _HEART_PARTS]
    per["heart"] = (sum(c for c, _ in heart), sum(s for _, s in heart))
    base = {
        "image_id": image_id,
        "age": round(params.age_years, 2),
        "sex": params.sex,
        "height_cm": round(params.height_cm, 1),
        "bmi": round(params.bmi, 2),
    }
    rows = []
    for name in names:
        count, total = per[name]
        rows.append(
            {
                **base,
                "structure": name,
                "volume_ml": count * voxel_ml,
                "mean_hu": total / count if count else float("nan"),
            }
        )
    return rows


_JobArgs = tuple[int, int, float, tuple[PopulationEffect, ...], HeightTrend | None, str]


def _stats_job(args: _JobArgs) -> list[dict[str, Any]]:
    from totalseg.phantom.cohort_model import model_statistics

    seed, index, spacing_mm, effects, trend, engine = args
    fn = model_statistics if engine == "model" else subject_statistics
    return fn(
        subject_seed(seed, index),
        spacing_mm=spacing_mm,
        effects=effects,
        height_trend=trend,
        image_id=f"s{index:04d}",
    )


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError(
            "Cohort tables need pandas; install the extra: pip install 'totalseg[tables]'."
        ) from exc
    return pd.DataFrame(rows, columns=list(COHORT_COLUMNS))


def generate_cohort(
    n: int,
    seed: int = 0,
    *,
    mode: str = "stats",
    out_dir: str | os.PathLike[str] | None = None,
    spacing_mm: float = 5.0,
    jobs: int = 1,
    effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS,
    engine: str = "model",
    height_trend: HeightTrend | None = DEFAULT_HEIGHT_TREND,
    options: DatasetOptions | None = None,
    progress: ProgressFn | None = None,
) -> pd.DataFrame:
    """A synthetic cohort of `n` subjects.

    mode "stats": one row per subject x structure (`COHORT_COLUMNS`) from `engine` ("model"
    or "render", see the module docstring), with the confounder `height_trend`; written to
    `out_dir/cohort_stats.parquet` and `.csv` when `out_dir` is given.
    mode "image": writes the dataset to `out_dir` (required) and returns its meta table.
    """
    if mode not in ("stats", "image"):
        raise InputError(f"Expected mode 'stats' or 'image', got {mode!r}.")
    if engine not in ENGINES:
        raise InputError(f"Expected engine 'model' or 'render', got {engine!r}.")
    if n < 1 or jobs < 1:
        raise InputError(f"Expected n >= 1 and jobs >= 1, got n={n}, jobs={jobs}.")
    if mode == "image":
        if out_dir is None:
            raise InputError(
                "Expected an output folder for an image cohort, got none; pass out_dir."
            )
        opts = options or DatasetOptions(effects=tuple(effects))
        meta = write_dataset(out_dir, n=n, seed=seed, options=opts, jobs=jobs, progress=progress)
        import pandas as pd

        return pd.read_csv(meta, sep=";")
    if not 1.0 <= spacing_mm <= 10.0:
        raise InputError(f"Expected a statistics spacing of 1-10 mm, got {spacing_mm}.")
    jobs_args = [
        (seed, i, float(spacing_mm), tuple(effects), height_trend, engine) for i in range(n)
    ]
    rows: list[dict[str, Any]] = []
    if jobs == 1:
        for i, a in enumerate(jobs_args):
            rows.extend(_stats_job(a))
            if progress is not None:
                progress(i + 1, n)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for i, result in enumerate(pool.map(_stats_job, jobs_args, chunksize=4)):
                rows.extend(result)
                if progress is not None:
                    progress(i + 1, n)
    table = _table(rows)
    if out_dir is not None:
        root = Path(out_dir)
        root.mkdir(parents=True, exist_ok=True)
        table.to_csv(root / "cohort_stats.csv", sep=";", index=False)
        with contextlib.suppress(ImportError):  # parquet needs pyarrow (the tables extra)
            table.to_parquet(root / "cohort_stats.parquet", index=False)
    return table
