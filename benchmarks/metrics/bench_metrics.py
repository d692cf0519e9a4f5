"""Benchmark: Dice + NSD (3 mm) of 117 structures on one CT-sized case, totalseg vs DeepMind.

Synthesizes a v2 label map (117 structures: a few large lobulated organs, medium organs, many
small and elongated ones) and a perturbed prediction (shifted centres, scaled radii, two
structures missed), then times:

- totalseg: `totalseg.metrics.evaluate_label_maps` (one pass for all bounding boxes, then each
  structure inside its box; surface distances with a k-d tree);
- reference: the reference tool's paper evaluation loop (`resources/evaluate.py`): per label
  `gt = ref == id`, `pred = pred == id`, DeepMind `compute_dice_coefficient`,
  `compute_surface_distances` and `compute_surface_dice_at_tolerance(..., 3.0)`, with its
  edge-case policy (missed structure -> 0, absent reference -> skipped).

Both run in this process on the same arrays; the per-structure values are compared.

    .venv/bin/python benchmarks/metrics/bench_metrics.py                  # 512 x 512 x 400
    .venv/bin/python benchmarks/metrics/bench_metrics.py --shape 256 256 200
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import numpy as np


def _ellipsoid(volume, label, centre, radii):
    lo = [max(math.floor(c - r), 0) for c, r in zip(centre, radii, strict=True)]
    hi = [min(math.ceil(c + r) + 1, s) for c, r, s in zip(centre, radii, volume.shape, strict=True)]
    if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
        return
    i, j, k = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    inside = (
        ((i - centre[0]) / radii[0]) ** 2
        + ((j - centre[1]) / radii[1]) ** 2
        + ((k - centre[2]) / radii[2]) ** 2
    ) <= 1.0
    volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][inside] = label


def structure_params(shape, seed, n=117):
    """Per label: three overlapping ellipsoids (centre, radii) making a lobulated shape."""
    rng = np.random.default_rng(seed)
    sizes = [(50, 110)] * 10 + [(15, 35)] * 37 + [(4, 14)] * (n - 47)
    params = []
    for label, (lo, hi) in enumerate(sizes, start=1):
        base = rng.uniform(lo, hi, size=3)
        if lo == 4 and label % 3 == 0:  # ribs, vessels: elongated
            base[rng.integers(0, 3)] *= rng.uniform(3, 6)
        base = np.minimum(base, np.array(shape) / 3)
        centre = rng.uniform(base, np.array(shape) - base)
        lobes = []
        for _ in range(3):
            offset = rng.normal(0, 0.3, size=3) * base
            lobes.append((centre + offset, base * rng.uniform(0.6, 1.0, size=3)))
        params.append((label, lobes))
    return params


def synthesize(shape, seed, *, perturb):
    rng = np.random.default_rng(seed + 1)
    volume = np.zeros(shape, dtype=np.uint8)
    missed = {60, 100} if perturb else set()
    for label, lobes in structure_params(shape, seed):
        if label in missed:
            continue
        shift = rng.normal(0, 1.0, size=3) if perturb else np.zeros(3)
        for centre, radii in lobes:
            scale = rng.uniform(0.95, 1.05, size=3) if perturb else np.ones(3)
            _ellipsoid(volume, label, centre + shift, radii * scale)
    return volume


def run_totalseg(ref, pred, spacing, metrics):
    from totalseg.anatomy import class_map
    from totalseg.image import LabelMap
    from totalseg.metrics import EvaluationConfig, evaluate_label_maps

    affine = np.diag([*spacing, 1.0])
    names = class_map("v2")
    t0 = time.perf_counter()
    results = evaluate_label_maps(
        LabelMap(ref, affine, names),
        LabelMap(pred, affine, names),
        config=EvaluationConfig(metrics=metrics),
    )
    elapsed = time.perf_counter() - t0
    ids = {n: i for i, n in names.items()}
    return elapsed, {ids[n]: r.values for n, r in results.items()}


def run_reference(ref, pred, spacing):
    import surface_distance as sd

    t0 = time.perf_counter()
    out = {}
    for idx in range(1, 118):
        gt, pr = ref == idx, pred == idx
        if gt.any() and not pr.any():
            out[idx] = {"dice": 0.0, "nsd": 0.0}
        elif gt.any():
            distances = sd.compute_surface_distances(gt, pr, list(spacing))
            out[idx] = {
                "dice": float(sd.compute_dice_coefficient(gt, pr)),
                "nsd": float(sd.compute_surface_dice_at_tolerance(distances, 3.0)),
            }
        else:
            out[idx] = {"dice": math.nan, "nsd": math.nan}
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 400))
    parser.add_argument("--spacing", type=float, nargs=3, default=(0.78, 0.78, 1.0))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    shape, spacing = tuple(args.shape), tuple(args.spacing)

    t0 = time.perf_counter()
    ref = synthesize(shape, args.seed, perturb=False)
    pred = synthesize(shape, args.seed, perturb=True)
    synth_s = time.perf_counter() - t0
    n_present = len(set(np.unique(ref)) - {0})
    print(
        f"shape {shape}, spacing {spacing} mm, {n_present} structures in the reference, "
        f"synthesized in {synth_s:.1f} s"
    )

    ts_s, ours = run_totalseg(ref, pred, spacing, ("dice", "nsd"))
    print(f"totalseg Dice+NSD:        {ts_s:8.2f} s")
    full_s, _ = run_totalseg(
        ref,
        pred,
        spacing,
        (
            "dice",
            "nsd",
            "hd95_mm",
            "assd_mm",
            "volume_ref_ml",
            "volume_pred_ml",
            "volume_diff_ml",
            "volume_diff_rel",
        ),
    )
    print(f"totalseg all 8 metrics:   {full_s:8.2f} s")
    record = {
        "shape": shape,
        "spacing_mm": spacing,
        "n_structures": n_present,
        "totalseg_dice_nsd_s": round(ts_s, 2),
        "totalseg_all_metrics_s": round(full_s, 2),
        "cpu": platform.processor() or platform.machine(),
    }
    if not args.skip_reference:
        ref_s, theirs = run_reference(ref, pred, spacing)
        print(f"surface-distance Dice+NSD:{ref_s:8.2f} s")
        diffs = {
            m: max(abs(ours[i][m] - theirs[i][m]) for i in theirs if not math.isnan(theirs[i][m]))
            for m in ("dice", "nsd")
        }
        dice = [theirs[i]["dice"] for i in theirs if not math.isnan(theirs[i]["dice"])]
        print(
            f"speed-up {ref_s / ts_s:.1f}x; max |difference| Dice {diffs['dice']:.2e}, "
            f"NSD {diffs['nsd']:.2e}; mean Dice {np.mean(dice):.3f}"
        )
        record.update(
            reference_s=round(ref_s, 2), speedup=round(ref_s / ts_s, 1), max_abs_diff=diffs
        )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
