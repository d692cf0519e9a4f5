"""A TotalSegmentator-sized random model (6 stages 32..320, patch 128^3, 1.5 mm) vs nnunetv2.

Minutes on 2 CPU cores: run with `pytest -m slow tests/integration/test_slow_total_sized.py`.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from totalseg.pipeline import Segmenter, SegmentOptions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    from totalseg.models.writer import random_model_folder

    return random_model_folder(
        tmp_path_factory.mktemp("big") / "Dataset991_Big" / "nnUNetTrainerNoMirroring__3d_fullres",
        n_classes=24, patch_size=(128, 128, 128), spacing_mm=1.5,
        features_per_stage=(32, 64, 128, 256, 320, 320),
        strides=((1, 1, 1),) + ((2, 2, 2),) * 5, kernel_sizes=((3, 3, 3),) * 6, seed=7,
    )  # fmt: skip


def test_totalsegmentator_sized_model_parity_and_fast_dice(
    big_folder, tmp_path, run_nnunet, phantom, affine_of, per_class_dice
):
    path = tmp_path / "ct_0000.nii.gz"
    affine = affine_of("LPS", (1.5, 1.5, 1.5))
    nib.save(nib.Nifti1Image(phantom((140, 136, 130), seed=4), affine), path)
    expected = run_nnunet(big_folder, path, tile_step=0.8)  # 8 tiles of 128^3
    opts = SegmentOptions(mirroring=False)
    got = Segmenter(model_dir=big_folder, device="cpu", parity=True, tile_step=0.8, options=opts)
    assert np.array_equal(np.asarray(got(path).array), expected)
    fast = Segmenter(model_dir=big_folder, device="cpu", tile_step=0.8, options=opts)(path)
    dice = per_class_dice(np.asarray(fast.array), expected)
    assert all(d >= 0.999 for d in dice.values()), dice
