"""The paper's runtime table: TotalSegmentator 2.18 vs totalseg on phantoms of the study's three
matrix sizes, `total` (1.5 mm) and `total-fast` (3 mm), same random-init weights, one run.

    python benchmarks/runtime_table/bench_runtime_table.py --work /tmp/rt --repeats 1

Phantoms: a `totalseg phantom` subject of the matching field of view (abdomen, thorax-abdomen,
whole-body), resampled (order 1) to exactly 512 x 512 x N (N = 280, 458, 824). Each engine runs
in a fresh process (imports included) on the same file; wall time and the peak of the summed RSS
of its process tree are recorded, and the labels are compared. `--scale 0.1` shrinks the
matrices and `--tiny` the networks, to check the script in seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from common import SRC, compare_engines, log, make_weights, write_results
from scipy import ndimage

SIZES = {"abdomen": 280, "thorax-abdomen": 458, "whole-body": 824}


def make_phantom(fov: str, n_slices: int, work: Path, *, scale: float) -> Path:
    """A phantom of `fov` at exactly (512, 512, n_slices) * scale voxels, RAS, int16 HU."""
    shape = tuple(max(8, round(s * scale)) for s in (512, 512, n_slices))
    path = work / f"phantom_{fov}_{'x'.join(map(str, shape))}.nii.gz"
    if path.exists():
        return path
    sys.path.insert(0, str(SRC))
    from totalseg.phantom.generate import generate_subject

    log(f"generating a {fov} phantom -> {shape}")
    phantom = generate_subject(0, fov=fov, spacing_mm=3.0 if scale >= 0.5 else 6.0)
    ct = np.asarray(phantom.image.array, dtype=np.float32)
    zoom = [t / s for t, s in zip(shape, ct.shape, strict=True)]
    data = ndimage.zoom(ct, zoom, order=1, mode="nearest").astype(np.int16)
    affine = phantom.image.affine.copy()
    affine[:3, :3] = affine[:3, :3] / np.asarray(zoom)
    work.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="work folder (weights, phantoms)")
    ap.add_argument("--sizes", default=",".join(SIZES), help="comma-separated fields of view")
    ap.add_argument("--tasks", default="total-fast,total", help="comma-separated tasks")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds per case")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of both engines")
    ap.add_argument("--scale", type=float, default=1.0, help="matrix scale (checks: 0.1)")
    ap.add_argument("--tiny", action="store_true", help="tiny networks (checks only)")
    ap.add_argument("--out", type=Path, default=None, help="markdown file (default: work/...)")
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    home = make_weights(args.work / ("home_tiny" if args.tiny else "home"), tasks, tiny=args.tiny)
    rows = []
    for fov in [s for s in args.sizes.split(",") if s]:
        ct = make_phantom(fov, SIZES[fov], args.work, scale=args.scale)
        for task in tasks:
            log(f"{fov} {task}")
            rows.append(compare_engines(
                task, ct, args.work / "outputs", home, repeats=args.repeats, threads=args.threads
            ))  # fmt: skip
    header = (
        f"# Runtime table ({'tiny networks, ' if args.tiny else ''}matrix scale {args.scale}, "
        f"{args.threads} threads, medians of {args.repeats} round(s))"
    )
    out = args.out or args.work / "runtime_table.md"
    write_results(rows, out, label="phantom", header=header)


if __name__ == "__main__":
    main()
