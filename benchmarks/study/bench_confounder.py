"""Confounder adjustment and reference curves on a synthetic stats-mode cohort, against truth.

Runs, in fresh processes (imports included) and timed:
    totalseg phantom cohort --n N --mode stats --out WORK/C
    totalseg study analyze WORK/C --adjust sex,height_cm --out WORK/R
    totalseg study reference WORK/C --out WORK/REF
then checks the results against the generator's truth (`totalseg.phantom.effects`: planted
direct effects; the height trend confounds every volume) and prints a markdown summary.

Usage:
    python benchmarks/study/bench_confounder.py --n 1000 --work /tmp/confounder
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    exe = Path(sys.executable).with_name("totalseg")
    subprocess.run([str(exe), *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def _truth_rows(adjusted, names):
    from totalseg.phantom.effects import confounded_volume_effects, planted_structures

    planted = {
        (s, "volume_ml" if m == "volume" else m): v
        for (s, m), v in planted_structures(names).items()
    }
    confounded = confounded_volume_effects(names)
    adj = adjusted.loc[adjusted["stratum"] == "all"]
    out = {}
    for measure in ("volume_ml", "mean_hu"):
        rows = adj.loc[adj["measure"] == measure]
        is_planted = np.array([(s, measure) in planted for s in rows["structure"]])
        sign_ok = [
            np.sign(r.r_s_partial) == np.sign(planted[(r.structure, measure)])
            and np.sign(r.effect_per_decade) == np.sign(planted[(r.structure, measure)])
            for r in rows.loc[is_planted].itertuples()
        ]
        not_planted = rows.loc[~is_planted]
        out[measure] = {
            "tests": len(rows),
            "planted": int(is_planted.sum()),
            "planted found unadjusted": int(rows.loc[is_planted, "significant_unadjusted"].sum()),
            "planted found adjusted (partial Spearman, Bonferroni)": int(
                rows.loc[is_planted, "significant"].sum()
            ),
            "planted found adjusted (RLM, Bonferroni)": int(
                rows.loc[is_planted, "rlm_significant"].sum()
            ),
            "planted with the right sign (both adjusted tests)": int(sum(sign_ok)),
            "not planted, significant unadjusted (Bonferroni)": int(
                not_planted["significant_unadjusted"].sum()
            ),
            "not planted, significant adjusted (partial Spearman, Bonferroni)": int(
                not_planted["significant"].sum()
            ),
            "not planted, significant adjusted (RLM, Bonferroni)": int(
                not_planted["rlm_significant"].sum()
            ),
            "not planted, significant adjusted (partial Spearman, FDR 0.05)": int(
                not_planted["significant_fdr"].sum()
            ),
        }
    vol = adj.loc[adj["measure"] == "volume_ml"].set_index("structure")
    effects = [
        (s, planted[(s, "volume_ml")], confounded[s], vol.loc[s])
        for s in sorted(vol.index)
        if (s, "volume_ml") in planted
    ]
    return out, effects


def _reference_check(ref_dir: Path) -> list[tuple[str, str, float, float, float, float]]:
    """(structure, sex, age, percentile, error in SE, error in population SD)."""
    import pandas as pd
    from scipy import stats

    from totalseg.phantom.cohort_model import true_log_volume

    table = pd.read_parquet(ref_dir / "reference.parquet")
    table = table.loc[table["measure"] == "volume_ml"]
    rows = []
    for structure in ("liver", "kidney_left", "spleen", "vertebrae_L3", "aorta"):
        for sex in ("F", "M"):
            for age in (30.0, 45.0, 60.0, 75.0, 85.0):
                sel = (table["structure"] == structure) & (table["sex"] == sex)
                row = table.loc[sel & (table["age"] == age)].iloc[0]
                mean, sd = true_log_volume(structure, age_years=age, sex=sex)
                for p in (2.5, 50.0, 97.5):
                    z = stats.norm.ppf(p / 100)
                    col = "p" + f"{p:g}".replace(".", "_")
                    se = np.hypot(row["location_se"], z * row["scale"] * row["log_scale_se"])
                    err = np.log(row[col]) - (mean + z * sd)
                    rows.append((structure, sex, age, p, float(err / se), float(err / sd)))
    return rows


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/confounder"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    c, r, ref = args.work / "C", args.work / "R", args.work / "REF"
    t_cohort = _timed(["phantom", "cohort", "--n", str(args.n), "--mode", "stats", "--out", str(c)])
    t_analyze = _timed(["study", "analyze", str(c), "--adjust", "sex,height_cm", "--out", str(r)])
    t_ref = _timed(["study", "reference", str(c), "--out", str(ref)])
    names = sorted(
        pd.read_parquet(c / "cohort_stats.parquet", columns=["structure"])["structure"].unique()
    )
    summary, effects = _truth_rows(pd.read_csv(r / "adjusted.csv"), names)
    print(
        f"n = {args.n}: cohort {t_cohort:.1f} s, analyze --adjust {t_analyze:.1f} s, "
        f"reference {t_ref:.1f} s\n"
    )
    print("| result | volume_ml | mean_hu |\n|---|---|---|")
    for key in summary["volume_ml"]:
        print(f"| {key} | {summary['volume_ml'][key]} | {summary['mean_hu'][key]} |")
    print(
        "\n| structure | planted / decade | marginal (confounded) / decade | unadjusted r_s "
        "| partial r_s | RLM effect / decade [95 % CI] |\n|---|---|---|---|---|---|"
    )
    for s, planted, marginal, row in effects:
        print(
            f"| {s} | {planted:+.3f} | {marginal:+.3f} | {row.r_s:+.3f} | "
            f"{row.r_s_partial:+.3f} | {row.effect_per_decade:+.3f} "
            f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}] |"
        )
    checks = _reference_check(ref)
    worst_se = max(abs(e) for *_k, e, _d in checks)
    worst_sd = max(abs(d) for *_k, _e, d in checks)
    within = sum(abs(e) < 2 for *_k, e, _d in checks)
    print(
        f"\nreference vs true percentiles (log volume; 5 structures x 2 sexes x 5 ages x "
        f"2.5/50/97.5 %): {within} of {len(checks)} within 2 SE, worst {worst_se:.2f} SE "
        f"= {worst_sd:.3f} population SD"
    )


if __name__ == "__main__":
    main()
