"""The issue's headline checks: `total-fast` (3 mm) on the real abdomen CT series and `total`
(1.5 mm, five parts) on example_ct_sm, totalseg (default options) vs TotalSegmentator 2.18 on
the same random-init weights in the reference layout; wall time, peak memory of the process tree,
their ratios, and the labels inside the body.

    python benchmarks/runtime_table/bench_headline.py --work /tmp/headline --repeats 1

The abdomen series is `../shared/data/totalsegmentator/example_ct_dicom` (512x512x20), given to
both tools as the NIfTI this script writes from it (totalseg's DICOM reader); `--fast-input` and
`--total-input` take other files. `--tiny` uses tiny networks, to check the script in seconds.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from common import SRC, compare_engines, make_weights, write_results

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "totalsegmentator"


def dicom_as_nifti(folder: Path, work: Path) -> Path:
    sys.path.insert(0, str(SRC))
    from totalseg.io import read_any
    from totalseg.io.nifti import write_image

    path = work / "example_ct_dicom.nii.gz"
    if not path.exists():
        work.mkdir(parents=True, exist_ok=True)
        write_image(read_any(folder), path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="work folder (weights, outputs)")
    ap.add_argument("--fast-input", type=Path, default=None, help="CT for total-fast")
    ap.add_argument("--total-input", type=Path, default=SHARED / "example_ct_sm.nii.gz")
    ap.add_argument("--tasks", default="total-fast,total", help="comma-separated tasks")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds per case")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of both engines")
    ap.add_argument("--tiny", action="store_true", help="tiny networks (checks only)")
    ap.add_argument("--out", type=Path, default=None, help="markdown file (default: work/...)")
    ap.add_argument(
        "--totalseg-args", default="", help="extra `segment` options, e.g. '--backend torch'"
    )
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    home = make_weights(args.work / ("home_tiny" if args.tiny else "home"), tasks, tiny=args.tiny)
    fast_input = args.fast_input or dicom_as_nifti(SHARED / "example_ct_dicom", args.work)
    inputs = {"total-fast": fast_input, "total": args.total_input}
    rows = [
        compare_engines(
            task, inputs[task], args.work / "outputs", home, repeats=args.repeats,
            threads=args.threads, totalseg_args=tuple(shlex.split(args.totalseg_args)),
        )
        for task in tasks
    ]  # fmt: skip
    header = (
        f"# Headline checks ({'tiny networks, ' if args.tiny else ''}{args.threads} threads, "
        f"medians of {args.repeats} round(s); totalseg `segment` defaults"
        f"{' + ' + args.totalseg_args if args.totalseg_args else ''}); targets: total-fast "
        ">= 4x faster, peak memory <= 1/2; total >= 2x; labels equal inside the body"
    )
    write_results(rows, args.out or args.work / "headline.md", label="input", header=header)


if __name__ == "__main__":
    main()
