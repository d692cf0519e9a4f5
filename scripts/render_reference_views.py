"""Render the views of the real example CT (with its official labels) and of a phantom.

    .venv/bin/python scripts/render_reference_views.py            # real -> scratch/reference_views
    .venv/bin/python scripts/render_reference_views.py --phantom  # phantom -> docs/phantom

The real scan (`../shared/data/totalsegmentator/example_ct_sm.nii.gz`, upper abdomen, 3 mm)
is rendered into an untracked folder for a side-by-side look; nothing from ../shared/data is
committed. `--phantom` writes the committed pictures of docs/phantom/ (a head-to-knee phantom at
3 mm, portal-venous phase, plus an abdominal view at the real scan's levels).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "totalsegmentator"


def _real(out_dir: Path) -> int:
    from totalseg.image import Image, LabelMap
    from totalseg.phantom.views import render_views

    ct_path, seg_path = DATA / "example_ct_sm.nii.gz", DATA / "example_seg.nii.gz"
    if not ct_path.exists():
        print(f"real scan not found at {ct_path}; nothing rendered", file=sys.stderr)
        return 1
    import nibabel as nib
    import numpy as np

    ct = nib.load(ct_path)
    seg = nib.load(seg_path)
    image = Image(np.asarray(ct.dataobj), ct.affine)
    labels = LabelMap(np.asarray(seg.dataobj).astype(np.uint8), seg.affine)
    positions = [
        ("coronal", 0.5),
        ("sagittal", 0.5),
        ("axial", 0.3),
        ("axial", 0.6),
        ("axial", 0.85),
    ]
    for path in render_views(image, labels, out_dir, prefix="real", positions=positions):
        print(path)
    return 0


def _phantom(out_dir: Path, spacing_mm: float, seed: int) -> int:
    from totalseg.phantom import generate_subject, sample_subject_params
    from totalseg.phantom.views import render_views

    params = sample_subject_params(
        seed, fov="whole-body", spacing_mm=spacing_mm, phase="portal-venous", sex="M"
    ).with_(roll_deg=0.0)
    phantom = generate_subject(params)
    v1 = phantom.label_map("v1")
    positions = [
        ("coronal", 0.55),
        ("sagittal", 0.5),
        ("axial", 0.30),
        ("axial", 0.45),
        ("axial", 0.52),
        ("axial", 0.66),
    ]
    for path in render_views(phantom.image, v1, out_dir, prefix="phantom", positions=positions):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantom", action="store_true", help="render a phantom into docs/")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--spacing", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.phantom:
        return _phantom(args.out or ROOT / "docs" / "phantom", args.spacing, args.seed)
    return _real(args.out or ROOT / "scratch" / "reference_views")


if __name__ == "__main__":
    raise SystemExit(main())
