"""Validation against truth: a cohort of synthetic phantoms with planted age effects.

1. generate N whole-body phantoms (`totalseg.phantom`, coarse spacing) and write them in the
   public dataset layout (DIR/sXXXX/ct.nii.gz, DIR/sXXXX/segmentations/<name>.nii.gz with the
   117 v2 structures, DIR/meta.csv) -- skipped for subjects already written;
2. `totalseg study run DIR --from-segmentations` (ground-truth masks, no model);
3. `totalseg study analyze`;
4. compare every Spearman r_s with the planted effect table (`totalseg.phantom.effects`).

Usage (resumable; the dataset is reused):
    python benchmarks/study/bench_phantom_cohort.py --n 400 --spacing-mm 6 --jobs 2 \
        --work /tmp/phantom_cohort --markdown benchmarks/study/phantom_cohort_table.md
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def write_subject(args: tuple[int, float, str]) -> tuple[str, float, str]:
    seed, spacing_mm, root = args
    from totalseg.io import write_image, write_mask_folder
    from totalseg.phantom import generate_subject, sample_subject_params

    image_id = f"s{seed:04d}"
    folder = Path(root) / image_id
    params = sample_subject_params(seed, fov="whole-body", spacing_mm=spacing_mm)
    if not (folder / "done").is_file():
        phantom = generate_subject(params)
        write_image(phantom.image, folder / "ct.nii.gz")
        write_mask_folder(phantom.label_map("v2"), folder / "segmentations")
        (folder / "done").write_text("ok\n")
    return image_id, params.age_years, params.sex


def make_dataset(root: Path, n: int, spacing_mm: float, jobs: int) -> float:
    start = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(jobs) as pool:
        rows = list(pool.map(write_subject, [(s, spacing_mm, str(root)) for s in range(n)]))
    lines = ["image_id;age;gender;institute;study_type;split"]
    lines += [f"{i};{age:.2f};{sex.lower()};phantom;ct;train" for i, age, sex in rows]
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    return time.perf_counter() - start


def compare(report: Path) -> tuple[list[dict], dict]:
    import pandas as pd

    from totalseg.anatomy import class_map
    from totalseg.phantom.effects import planted_structures

    names = list(class_map("v2").values())
    planted = {
        (n, "volume_ml" if m == "volume" else "mean_hu"): v
        for (n, m), v in planted_structures(names).items()
    }
    sp = pd.read_csv(report / "spearman.csv")
    sp = sp.loc[sp["stratum"] == "all"]
    rows, found, wrong_sign, missed, false_pos = [], 0, 0, [], []
    for r in sp.itertuples():
        size = planted.get((r.structure, r.measure))
        sig = bool(r.significant)
        if size is not None:
            ok = sig and np.sign(r.r_s) == np.sign(size)
            found += ok
            wrong_sign += sig and np.sign(r.r_s) != np.sign(size)
            if not sig:
                missed.append(f"{r.structure}/{r.measure}")
        elif sig:
            false_pos.append(f"{r.structure}/{r.measure}")
        rows.append(
            {
                "structure": r.structure,
                "measure": r.measure,
                "planted_per_decade": size,
                "n": int(r.n),
                "r_s": r.r_s,
                "p_bonferroni": r.p_bonferroni,
                "significant": sig,
            }
        )
    untested = sorted(set(planted) - {(r["structure"], r["measure"]) for r in rows})
    summary = {
        "n_planted": len(planted),
        "planted_found_right_sign": int(found),
        "planted_wrong_sign": int(wrong_sign),
        "planted_missed": missed,
        "planted_untested": [f"{s}/{m}" for s, m in untested],
        "unplanted_significant": false_pos,
        "n_tests": len(rows),
    }
    return rows, summary


def markdown(rows: list[dict]) -> str:
    out = ["| structure | measure | planted / decade | n | r_s | P (Bonferroni) | significant |"]
    out.append("|---|---|---|---|---|---|---|")
    for r in sorted(
        rows, key=lambda r: (r["planted_per_decade"] is None, r["measure"], r["structure"])
    ):
        planted = "-" if r["planted_per_decade"] is None else f"{r['planted_per_decade']:+g}"
        r_s = "" if r["r_s"] != r["r_s"] else f"{r['r_s']:+.3f}"
        p = "" if r["p_bonferroni"] != r["p_bonferroni"] else f"{r['p_bonferroni']:.2g}"
        sig = "yes" if r["significant"] else "no"
        out.append(
            f"| {r['structure']} | {r['measure']} | {planted} | {r['n']} | {r_s} | {p} | {sig} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--spacing-mm", type=float, default=6.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/phantom_cohort"))
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    from totalseg.study import AnalysisConfig, StudyConfig, analyze_study, run_study

    dataset, study, report = args.work / "dataset", args.work / "study", args.work / "report"
    t_gen = make_dataset(dataset, args.n, args.spacing_mm, args.jobs)
    t0 = time.perf_counter()
    summary = run_study(
        dataset, study, config=StudyConfig(from_segmentations=True, workers=args.workers)
    )
    t_run = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = analyze_study(study, report, config=AnalysisConfig())
    t_analyze = time.perf_counter() - t0
    rows, check = compare(report)
    excl = result.exclusions
    check.update(
        {
            "n_subjects": args.n,
            "spacing_mm": args.spacing_mm,
            "study_ok": summary.n_ok + summary.n_skipped,
            "study_failed": summary.n_failed,
            "excluded_incomplete": int(excl["n_incomplete"].sum()),
            "excluded_below_min_volume": int(excl["n_below_min_volume"].sum()),
            "generate_s": round(t_gen, 1),
            "study_run_s": round(t_run, 1),
            "analyze_s": round(t_analyze, 1),
        }
    )
    print(json.dumps(check, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown(rows))


if __name__ == "__main__":
    main()
