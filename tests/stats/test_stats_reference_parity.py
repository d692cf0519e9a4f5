"""Parity with the reference tool's statistics on the real example CT (skips without data)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from totalseg.anatomy import class_map
from totalseg.image import Image, LabelMap
from totalseg.stats import compute_statistics, read_reference_statistics


def _inputs(folder: Path) -> tuple[Image, LabelMap]:
    ct = nib.load(folder / "example_ct_sm.nii.gz")
    seg = nib.load(folder / "example_seg_fast.nii.gz")
    image = Image(np.asarray(ct.dataobj), ct.affine)
    return image, LabelMap(np.asarray(seg.dataobj), seg.affine, class_map("v2"))


def test_volumes_and_mean_hu_match_the_reference_statistics(shared_data: Path) -> None:
    image, label_map = _inputs(shared_data)
    # the reference's file was made with -sii: border rule off
    table = compute_statistics(image, label_map, border_voxels=0)
    reference = read_reference_statistics(shared_data / "example_seg_fast_statistics.json")
    assert set(reference) == set(table.names)
    reported = [r for r in reference.values() if r.reported]
    assert len(reported) == 40
    for ref in reported:
        ours = table[ref.name]
        assert ours.volume_mm3 == pytest.approx(ref.volume_mm3, rel=0.03), ref.name
        assert abs(ours.mean_hu - ref.mean_hu) < 2.0, ref.name
    for ref in reference.values():
        if not ref.reported:
            assert table[ref.name].status == "absent"


def test_reference_compatible_mode_reproduces_the_file_exactly(shared_data: Path) -> None:
    image, label_map = _inputs(shared_data)
    table = compute_statistics(image, label_map, border_voxels=0, reference_compatible=True)
    reference = read_reference_statistics(shared_data / "example_seg_fast_statistics.json")
    for name, ref in reference.items():
        assert table[name].volume_mm3 == pytest.approx(ref.volume_mm3, abs=1e-6), name
        assert table[name].mean_hu == pytest.approx(ref.mean_hu, abs=1e-5), name


def test_border_rule_flags_cut_structures_of_the_real_scan(shared_data: Path) -> None:
    image, label_map = _inputs(shared_data)
    table = compute_statistics(image, label_map)
    liver = table["liver"]  # the 30-slice crop cuts the liver at both ends
    assert liver.status == "incomplete"
    assert liver.volume_mm3 > 0  # kept, only flagged
