"""Mean HU per structure: phantoms vs the real example scan's official statistics.

    .venv/bin/python benchmarks/phantom/compare_hu.py [--n 4]

The real numbers are `example_seg_fast_statistics.json` (official 3 mm model on
example_ct_sm.nii.gz, mean HU inside each label on the 3 mm grid, no erosion; a non-contrast
upper-abdominal scan). The phantom numbers are computed the same way -- mean of the CT inside
each ground-truth label on a 3 mm grid -- for `--n` abdominal phantoms per phase (native and
portal venous), averaged. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
STATS = ROOT.parent / "shared" / "data" / "totalsegmentator" / "example_seg_fast_statistics.json"


def phantom_means(phase: str, n: int) -> dict[str, list[float]]:
    from totalseg.phantom import generate_subject, sample_subject_params

    out: dict[str, list[float]] = {}
    for seed in range(n):
        params = sample_subject_params(100 + seed, fov="abdomen", spacing_mm=3.0, phase=phase)
        ph = generate_subject(params)
        lm = ph.label_map("v2")
        lab = np.asarray(lm.array).ravel()
        ct = np.asarray(ph.image.array).ravel().astype(np.float64)
        counts = np.bincount(lab, minlength=256)
        sums = np.bincount(lab, weights=ct, minlength=256)
        for i, name in lm.labels.items():
            if counts[i] > 0:
                out.setdefault(name, []).append(sums[i] / counts[i])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4)
    args = parser.parse_args()
    real = json.loads(STATS.read_text())
    native = phantom_means("native", args.n)
    portal = phantom_means("portal-venous", args.n)
    print("| structure | real scan (official labels) | phantom native | phantom portal venous |")
    print("|---|---:|---:|---:|")
    for name, entry in real.items():
        if entry["volume"] <= 0:
            continue
        nat, pv = native.get(name), portal.get(name)
        fmt = lambda v: f"{np.mean(v):.0f}" if v else "-"  # noqa: E731
        print(f"| {name} | {entry['intensity']:.0f} | {fmt(nat)} | {fmt(pv)} |")


if __name__ == "__main__":
    main()
