"""Scale: analysis of a 4004-scan x 117-structure study (the paper's cohort size).

Builds a synthetic study folder (the phantom effect model with measurement noise: planted age
effects, sex differences, 3 % incomplete structures) through the same `ResultStore.commit`
a cohort run uses (one transaction per scan, so the client's write throughput is measured
too), then times the CLI `totalseg study analyze` in a fresh process (imports included).

Usage:
    python benchmarks/study/bench_analysis_scale.py --scans 4004 --work /tmp/study_scale
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def synthetic_records(n_scans: int, seed: int = 0):
    """Yield (ScanSpec, ScanResult) of a synthetic cohort (phantom effect model + noise)."""
    from totalseg.anatomy import class_map
    from totalseg.phantom.effects import hu_shift, volume_factor
    from totalseg.stats import RECORD_COLUMNS
    from totalseg.study import ScanResult, ScanSpec, load_min_volumes

    rng = np.random.default_rng(seed)
    names = list(class_map("v2").values())
    bounds = load_min_volumes()
    base_ml = np.array([max(10.0, 4 * bounds.get(n, 2.0)) for n in names])
    base_hu = rng.uniform(-50, 300, len(names))
    # the effect model is exponential (volume) and linear (HU) in age: vectorise it
    f50 = {s: np.array([volume_factor(n, age_years=50, sex=s) for n in names]) for s in "FM"}
    k = np.log([volume_factor(n, age_years=60, sex="F") / f50["F"][i] for i, n in enumerate(names)])
    h = np.array([hu_shift(n, age_years=60) for n in names])
    template = dict.fromkeys(RECORD_COLUMNS, math.nan)
    for i in range(n_scans):
        age = float(np.clip(rng.normal(60, 15), 18, 95))
        sex = "M" if rng.random() < 0.55 else "F"
        vol = base_ml * f50[sex] * np.exp(k * (age - 50) / 10) * rng.lognormal(0, 0.12, len(names))
        hu = base_hu + h * (age - 50) / 10 + rng.normal(0, 8, len(names))
        status = np.where(rng.random(len(names)) < 0.03, "incomplete", "ok")
        records = tuple(
            {
                **template,
                "structure": n,
                "label": j + 1,
                "status": str(status[j]),
                "n_voxels": int(vol[j] * 1000 / 3.375),
                "volume_mm3": float(vol[j] * 1000),
                "volume_ml": float(vol[j]),
                "mean_hu": float(hu[j]),
            }
            for j, n in enumerate(names)
        )
        spec = ScanSpec(
            scan_id=f"s{i:05d}",
            path=f"/data/s{i:05d}.nii.gz",
            subject_id=f"p{i:05d}",
            age=age,
            sex=sex,
        )
        yield spec, ScanResult(scan_id=spec.scan_id, status="ok", records=records)


def build_study(folder: Path, n_scans: int) -> dict[str, float]:
    from totalseg.study import ResultStore

    if folder.exists():
        shutil.rmtree(folder)
    t_gen = t_commit = 0.0
    with ResultStore(folder) as store:
        t = time.perf_counter()
        for spec, result in synthetic_records(n_scans):
            t_gen += time.perf_counter() - t
            t = time.perf_counter()
            store.commit(spec, result)
            t_commit += time.perf_counter() - t
            t = time.perf_counter()
        t = time.perf_counter()
        store.export_parquet()
        t_export = time.perf_counter() - t
        counts = store.counts()
    return {
        "n_rows": counts["structure_rows"],
        "generate_s": round(t_gen, 1),
        "commit_s": round(t_commit, 1),
        "commit_ms_per_scan": round(1000 * t_commit / n_scans, 2),
        "export_parquet_s": round(t_export, 2),
    }


def time_cli(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from totalseg.cli import run; run()", *args], check=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=4004)
    parser.add_argument("--work", type=Path, default=Path("/tmp/study_scale"))
    args = parser.parse_args()
    study = args.work / "study"
    result = {"scans": args.scans, **build_study(study, args.scans)}
    result["analyze_s"] = round(
        time_cli(["study", "analyze", str(study), "--out", str(args.work / "report")]), 1
    )
    result["analyze_by_sex_s"] = round(
        time_cli(
            ["study", "analyze", str(study), "--out", str(args.work / "report_sex"), "--by-sex"]
        ),
        1,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
