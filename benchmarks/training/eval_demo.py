"""Evaluate the demo model on held-out phantoms with totalseg's own commands, and summarise.

Runs, and prints, three CLI commands:

1. ``totalseg phantom``: N new phantoms (dataset seed `--seed`, never used in training: the
   demo model was trained on `sample_subject_params(0..39)`), with drawn field of view, spacing
   (0.6-1.5 mm in-plane, 0.6-5 mm slices), orientation and contrast phase;
2. ``totalseg segment --task demo --ml``: all cases in one call (the model stays loaded);
3. ``totalseg evaluate --metrics dice``: Dice per case and structure (v1 ids).

Then reads ``metrics.csv`` and prints the mean Dice over the structures present in each case,
the per-structure and per-group means, and the ten worst structures, as Markdown.

Usage:
    python benchmarks/training/eval_demo.py --work /tmp/demo_eval [--model-dir DIR] [--n 10]
"""

from __future__ import annotations

import argparse
import csv
import math
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

CLI = [sys.executable, "-c", "from totalseg.cli import run; run()"]


def sh(args: list[str]) -> None:
    print("$ totalseg " + shlex.join(args[len(CLI) :] if args[: len(CLI)] == CLI else args))
    start = time.perf_counter()
    subprocess.run(args, check=True)
    print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/totalseg_demo_eval"))
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: task demo")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    data, pred, report = args.work / "heldout", args.work / "pred", args.work / "eval"
    if not (data / "meta.csv").is_file():
        sh([*CLI, "phantom", "--n", str(args.n), "--seed", str(args.seed), "--fov", "random",
            "--orientation", "random", "--phase", "random", "--out", str(data),
            "--jobs", str(args.jobs)])  # fmt: skip
    cases = sorted(data.glob("s*/ct.nii.gz"))
    model = ["--model-dir", str(args.model_dir)] if args.model_dir else ["--task", "demo"]
    sh([*CLI, "segment", "-i", *map(str, cases), "-o", str(pred), "--ml", *model,
        "--device", args.device])  # fmt: skip
    sh([*CLI, "evaluate", "--pred", str(pred), "--ref", str(data), "--out", str(report),
        "--metrics", "dice", "--class-map", "v1", "--n-resamples", "1000", "--csv-only",
        "--jobs", str(args.jobs)])  # fmt: skip
    summarise(report / "metrics.csv")


def summarise(metrics_csv: Path) -> None:
    per_structure: dict[str, list[float]] = defaultdict(list)
    per_case: dict[str, list[float]] = defaultdict(list)
    with metrics_csv.open(newline="") as f:
        for row in csv.DictReader(f):  # long format: case, structure, metric, value, status
            if row["metric"] != "dice":
                continue
            value = float(row["value"]) if row["value"] not in ("", "nan") else math.nan
            if math.isnan(value):  # structure absent from the reference: excluded
                continue
            per_structure[row["structure"]].append(value)
            per_case[row["case"]].append(value)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    print("\n| case | structures present | mean Dice |\n|---|---|---|")
    for case, values in sorted(per_case.items()):
        print(f"| {case} | {len(values)} | {mean(values):.3f} |")
    overall = mean([mean(v) for v in per_case.values()])
    macro = mean([mean(v) for v in per_structure.values()])
    print(f"\nMean over cases of the mean Dice over the structures present: **{overall:.3f}**")
    print(f"Mean over the {len(per_structure)} structures of their mean Dice: **{macro:.3f}**")
    from totalseg.anatomy import structures

    group_of = {s.name: s.group for s in structures()}
    groups: dict[str, list[float]] = defaultdict(list)
    for name, values in per_structure.items():
        groups[group_of[name]].append(mean(values))
    print("\n| group | structures | mean of the structure means |\n|---|---|---|")
    for group, means in sorted(groups.items()):
        print(f"| {group} | {len(means)} | {mean(means):.3f} |")
    ranked = sorted(per_structure.items(), key=lambda kv: mean(kv[1]))
    print("\nWorst ten structures:\n\n| structure | mean Dice | cases |\n|---|---|---|")
    for name, values in ranked[:10]:
        print(f"| {name} | {mean(values):.3f} | {len(values)} |")
    print("\nAll structures (mean Dice, cases):\n")
    print(", ".join(f"{n} {mean(v):.2f} ({len(v)})" for n, v in sorted(per_structure.items())))


if __name__ == "__main__":
    main()
