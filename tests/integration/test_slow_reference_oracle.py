"""The reference tool itself as an oracle: the PyPI `TotalSegmentator` package and totalseg run
the same random-init weights (official folder layout, temporary home) on the same input.

The package is a test-only dependency (`pip install -e ".[oracle]"`); the test skips without it.
It must never download: the weights folders exist, telemetry is switched off in its config.json,
and the test fails if it tries to reach the network (fixture `reference_api` in conftest). Run with
`pytest -m slow tests/integration/test_slow_reference_oracle.py`.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from totalseg.pipeline import Segmenter, SegmentOptions

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("task", "reference_kwargs", "codes", "spacing_mm", "shape"),
    [
        ("total", {}, "LPS", (1.2, 0.9, 2.0), (41, 57, 23)),
        ("total", {}, "oblique", (1.3, 1.1, 1.7), (45, 38, 29)),
        ("total-fast", {"fast": True}, "PIR", (2.2, 3.5, 2.6), (48, 33, 52)),
    ],
)
def test_totalseg_matches_the_reference_tool(
    task, reference_kwargs, codes, spacing_mm, shape, weights_home, reference_api, tmp_path,
    phantom, affine_of, per_class_dice,
):  # fmt: skip
    path = tmp_path / "ct.nii.gz"
    affine = affine_of(codes, spacing_mm)
    nib.save(nib.Nifti1Image(phantom(shape, seed=3), affine), path)
    expected = reference_api(path, task="total", **reference_kwargs)
    options = SegmentOptions(home=weights_home)
    got = Segmenter(task=task, device="cpu", parity=True, options=options)(path)
    assert got.array.shape == expected.shape
    np.testing.assert_allclose(got.affine, nib.load(path).affine, atol=1e-6)
    assert len(np.unique(expected)) > 3, "too few classes found to compare"
    np.testing.assert_array_equal(np.asarray(got.array), expected)
    default = Segmenter(task=task, device="cpu", options=options)(path)
    dice = per_class_dice(np.asarray(default.array), expected)
    assert min(dice.values()) >= 0.999, dice


@pytest.mark.parametrize("task", ["total", "total-fast"])
def test_roi_subset_crops_like_the_reference_tool(
    task, weights_home, reference_api, tmp_path, phantom, affine_of
):
    """The low-res crop model (6 mm), the 20 mm box, the parts that hold the structures."""
    path = tmp_path / "ct.nii.gz"
    nib.save(
        nib.Nifti1Image(phantom((60, 52, 44), seed=5), affine_of("LAS", (1.4, 1.2, 1.9))), path
    )
    options = SegmentOptions(home=weights_home)
    rough = Segmenter(task="total-fastest", device="cpu", options=options)(path)
    found = rough.present_labels()
    assert found, "the random crop model found nothing to crop to"
    # the smallest structure found, so that the crop box is smaller than the image
    roi = [rough.labels[min(found, key=lambda i: int(rough.mask(i).sum()))]]
    fast = {"fast": True} if task == "total-fast" else {}
    expected = reference_api(path, task="total", roi_subset=roi, **fast)
    got = Segmenter(task=task, device="cpu", parity=True, roi_subset=roi, options=options)(path)
    np.testing.assert_array_equal(np.asarray(got.array), expected)
    assert set(np.unique(expected)) <= {0, *got.labels}
