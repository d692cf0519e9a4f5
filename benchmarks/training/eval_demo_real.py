"""The demo model on the real CT in ``../shared/data``: Dice per structure, by name, against the
labels beside each scan (never used for training or tuning; test data only).

Cases (see ``../shared/data/SOURCES.md``):

- ``example_ct_sm``: real abdominal CT at 3 mm; reference ``example_seg.nii.gz``, the official
  1.5 mm five-part model (v2 ids);
- ``example_ct_dicom``: a real CT DICOM series (512x512x20); reference ``example_seg_dicom.nii.gz``,
  the official 3 mm model (v2 ids);
- ``tptbox``: a lumbar spine crop in PIR orientation; reference: the VerSe vertebra labels
  (20 = L1 ... 24 = L5), a manual-style annotation, not the official model.

The prediction (``totalseg segment --ml``, task demo or ``--model-dir``) and the reference are
both reoriented to RAS and must then share one grid. Structures are matched by name (the v1 and
v2 names agree for every v1 structure on these scans); the four heart chambers and the
myocardium of v1 are also compared as one "heart" with v2's heart. A structure counts when the
reference or the prediction has it; Dice is 0 when only one of them has it.

Usage:
    python benchmarks/training/eval_demo_real.py --work /tmp/demo_real [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
CLI = [sys.executable, "-c", "from totalseg.cli import run; run()"]
HEART = ("heart_myocardium", "heart_atrium_left", "heart_ventricle_left", "heart_atrium_right",
         "heart_ventricle_right")  # fmt: skip
VERSE = {20: "vertebrae_L1", 21: "vertebrae_L2", 22: "vertebrae_L3", 23: "vertebrae_L4",
         24: "vertebrae_L5"}  # fmt: skip


def cases() -> list[tuple[str, Path, Path, dict[int, str]]]:
    from totalseg.anatomy import class_map

    ts, v2 = DATA / "totalsegmentator", class_map("v2")
    return [
        ("example_ct_sm", ts / "example_ct_sm.nii.gz", ts / "example_seg.nii.gz", v2),
        ("example_ct_dicom", ts / "example_ct_dicom", ts / "example_seg_dicom.nii.gz", v2),
        ("tptbox_lumbar", DATA / "tptbox" / "sub-ct_label-22_ct.nii.gz",
         DATA / "tptbox" / "sub-ct_seg-vert_label-22_msk.nii.gz", VERSE),
    ]  # fmt: skip


def canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.as_closest_canonical(nib.load(path))
    return np.asarray(image.dataobj).astype(np.int32), image.affine


def by_name(labels: np.ndarray, names: dict[int, str]) -> dict[str, np.ndarray]:
    masks = {names[int(i)]: labels == i for i in np.unique(labels) if int(i) in names}
    heart = [masks[n] for n in HEART if n in masks]
    if heart:
        masks["heart"] = np.logical_or.reduce(heart)
    return masks


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def main() -> None:
    from totalseg.anatomy import class_map

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/totalseg_demo_real"))
    parser.add_argument("--model-dir", type=Path, default=None, help="default: task demo")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"Expected the real CT test data at '{DATA}', found nothing.")
    model = ["--model-dir", str(args.model_dir)] if args.model_dir else ["--task", "demo"]
    v1 = class_map("v1")
    rows: list[tuple[str, str, float]] = []
    for name, source, reference, ref_names in cases():
        out = args.work / f"{name}.nii.gz"
        command = [*CLI, "segment", "-i", str(source), "-o", str(out), "--ml", *model, "--force"]
        print("$ totalseg " + shlex.join(command[len(CLI) :]), flush=True)
        subprocess.run(command, check=True)
        pred, pred_affine = canonical(out)
        ref, ref_affine = canonical(reference)
        if pred.shape != ref.shape or not np.allclose(pred_affine, ref_affine, atol=1e-3):
            sys.exit(f"{name}: prediction grid {pred.shape} differs from the reference {ref.shape}")
        p, r = by_name(pred, v1), by_name(ref, ref_names)
        if ref_names is VERSE:  # only the vertebrae are annotated there
            p = {k: v for k, v in p.items() if k.startswith("vertebrae_")}
        known = (set(v1.values()) | {"heart"}) - set(HEART)  # v2 has one heart label
        empty = np.zeros(ref.shape, bool)
        for structure in sorted((set(p) | set(r)) & known):
            rows.append((name, structure, dice(p.get(structure, empty), r.get(structure, empty))))
    print("\n| case | structure | Dice |\n|---|---|---|")
    for case, structure, value in rows:
        print(f"| {case} | {structure} | {value:.3f} |")
    for case in dict.fromkeys(c for c, _, _ in rows):
        values = [v for c, _, v in rows if c == case]
        print(f"\n{case}: mean Dice {np.mean(values):.3f} over {len(values)} structures")


if __name__ == "__main__":
    main()
