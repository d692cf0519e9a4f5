"""The reference tool as an oracle for its other tasks: lung_vessels (anisotropic spacing, crop
to the lobes found by the 3 mm model), liver_vessels (native spacing, crop to the liver found by
the 6 mm model) and total_mr (two parts merged), on the same random-init weights. Slow; needs
the `TotalSegmentator` package (`pip install -e ".[oracle]"`), skips without it."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from tests.integration.test_other_tasks import install_random

from totalseg.pipeline import Segmenter, SegmentOptions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def weights_home(tmp_path_factory):
    """Overrides the conftest home: random models of the tasks compared here (seed 4: the
    crop models find lobes and liver on this phantom)."""
    home = tmp_path_factory.mktemp("oracle_tasks")
    for task in ("total-fast", "total-fastest", "lung_vessels", "liver_vessels", "total_mr"):
        install_random(home, task, seed=4)
    return home


@pytest.mark.parametrize(
    ("task", "codes", "spacing_mm", "shape"),
    [
        ("lung_vessels", "LPS", (1.6, 1.4, 2.0), (40, 36, 30)),
        ("liver_vessels", "LPS", (1.6, 1.4, 2.0), (30, 28, 22)),
        ("total_mr", "PIR", (2.2, 2.5, 2.6), (36, 30, 33)),
    ],
)
def test_other_tasks_match_the_reference_tool(
    task,
    codes,
    spacing_mm,
    shape,
    weights_home,
    reference_api,
    tmp_path,
    phantom,
    affine_of,
):
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(phantom(shape, seed=1), affine_of(codes, spacing_mm)), path)
    expected = reference_api(path, task=task)
    options = SegmentOptions(home=weights_home)
    got = Segmenter(task=task, device="cpu", parity=True, options=options)(path)
    assert got.array.shape == expected.shape
    np.testing.assert_array_equal(np.asarray(got.array), expected)
