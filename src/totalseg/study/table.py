"""The tidy scan x structure table of a study, from a study folder or from a long table.

Accepted sources:
- a study folder written by `totalseg study run` (`study.duckdb`): the measured structures of
  every scan that finished `ok`, with the manifest's subject columns (age, sex and every
  covariate of `covariates_json`, e.g. height_cm, bmi) as columns;
- a folder with a long table `cohort_stats.parquet` (or `.csv`), as written by
  `totalseg phantom cohort --mode stats`;
- a `.parquet` or `.csv` (`,` or `;` separated) file in that long layout: one row per subject
  x structure with columns `scan_id` (or `image_id` / `subject_id`), `age`, `sex`,
  `structure`, `volume_ml`, `mean_hu`, optionally `status` (`ok`, `incomplete`, `absent`;
  without it a row is `ok` when its volume is above 0, else `absent`) and any number of
  covariate columns (numeric or categorical) that `study analyze --adjust` can use.

Sex is normalised to `M` / `F` (`normalize_sex`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from totalseg.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COHORT_TABLE_NAMES", "load_study_table"]

REQUIRED = ("scan_id", "age", "sex", "structure", "status", "volume_ml", "mean_hu")
COHORT_TABLE_NAMES = ("cohort_stats.parquet", "cohort_stats.csv")
_ID_ALIASES = ("image_id", "subject_id")
_QUERY = (
    "SELECT s.scan_id, c.age, c.sex, c.covariates_json, s.structure, s.status, s.volume_ml, "
    "s.mean_hu FROM structure_stats s JOIN scans c USING (scan_id) WHERE c.status = 'ok'"
)


def load_study_table(source: str | os.PathLike[str]) -> pd.DataFrame:
    """Tidy scan x structure table (REQUIRED columns + covariates) of any accepted source."""
    p = Path(source)
    if p.is_dir():
        from totalseg.study.store import DB_NAME

        if (p / DB_NAME).is_file():
            return _from_study(p)
        for name in COHORT_TABLE_NAMES:
            if (p / name).is_file():
                return _normalize(_read_file(p / name), p / name)
        raise InputError(
            f"Expected a study database ({DB_NAME}) or a cohort table "
            f"({' or '.join(COHORT_TABLE_NAMES)}) in '{p}', got neither; run `totalseg study "
            "run` or `totalseg phantom cohort --mode stats` first, or check the folder."
        )
    if p.is_file() and p.suffix.lower() in (".parquet", ".csv"):
        return _normalize(_read_file(p), p)
    raise InputError(
        f"Expected a study folder, a cohort folder or a .parquet/.csv long table, got '{p}'."
    )


def _from_study(folder: Path) -> pd.DataFrame:
    import pandas as pd

    from totalseg.study.store import ResultStore

    with ResultStore(folder, read_only=True) as store:
        frame = store.con.execute(_QUERY).df()
    texts = frame.pop("covariates_json")
    covariates = [json.loads(t) if isinstance(t, str) and t else {} for t in texts]
    extra = pd.DataFrame(covariates, index=frame.index)
    extra = extra[[c for c in extra.columns if c not in frame.columns]]
    for col in extra.columns:  # manifest covariates are text; numbers become numbers
        numeric = pd.to_numeric(extra[col], errors="coerce")
        if numeric.notna().sum() == extra[col].notna().sum():
            extra[col] = numeric
    return pd.concat([frame, extra], axis=1)


def _read_file(path: Path) -> pd.DataFrame:
    import pandas as pd

    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    with path.open(encoding="utf-8-sig") as handle:
        header = handle.readline()
    sep = ";" if header.count(";") > header.count(",") else ","
    return pd.read_csv(path, sep=sep, encoding="utf-8-sig")


def _normalize(frame: pd.DataFrame, where: Path) -> pd.DataFrame:
    import numpy as np

    from totalseg.study.manifest import normalize_sex

    if "scan_id" not in frame.columns:
        alias = next((a for a in _ID_ALIASES if a in frame.columns), None)
        if alias is not None:
            frame = frame.rename(columns={alias: "scan_id"})
    if "status" not in frame.columns and "volume_ml" in frame.columns:
        present = frame["volume_ml"].fillna(0.0) > 0
        frame = frame.assign(status=np.where(present, "ok", "absent"))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(
            f"Expected a long table with columns {list(REQUIRED)} (scan_id may be image_id, "
            f"status may be left out), got '{where}' without {missing}; use a study folder "
            "or `totalseg phantom cohort --mode stats` output."
        )
    frame = frame.assign(scan_id=frame["scan_id"].astype(str))
    sex = frame["sex"].map(lambda v: normalize_sex(v) if isinstance(v, str) else None)
    return frame.assign(sex=sex)
