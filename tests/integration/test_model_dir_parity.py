"""A bare nnU-Net v2 model folder through `segment(model_dir=...)` vs nnunetv2's nnUNetPredictor.

Parity mode: identical voxels. Fast (default) mode: per-class Dice >= 0.999.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from totalseg.pipeline import Segmenter, SegmentOptions

TINY = {
    "features_per_stage": (4, 8, 16),
    "strides": ((1, 1, 1), (2, 2, 2), (2, 2, 2)),
    "kernel_sizes": ((3, 3, 3),) * 3,
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    from totalseg.models.writer import random_model_folder

    root = tmp_path_factory.mktemp("model_dirs")
    return {
        # anisotropic target spacing (array order z, y, x), 4 classes, mirroring allowed
        "aniso": random_model_folder(
            root / "aniso", n_classes=4, patch_size=(16, 32, 24), spacing_mm=(2.5, 1.0, 1.2),
            seed=11, mirror_axes=(0, 1, 2), trainer_name="nnUNetTrainer", **TINY,
        ),
        # 3 mm isotropic like total-fast, 3 classes, 4 stages
        "iso3": random_model_folder(
            root / "iso3", n_classes=3, patch_size=(32, 32, 32), spacing_mm=3.0, seed=12,
            features_per_stage=(4, 8, 12, 16), strides=((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2)),
            kernel_sizes=((3, 3, 3),) * 4,
        ),
    }  # fmt: skip


def _write(tmp_path: Path, array: np.ndarray, affine: np.ndarray, name: str = "case") -> Path:
    path = tmp_path / f"{name}_0000.nii.gz"
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


CASES = {
    # PIR axes, thick slices along j (3 mm vs 0.8 mm): nnU-Net's separate-z path, plus a zero slab
    "pir_separate_z": ((22, 14, 40), "PIR", (0.8, 3.0, 0.9)),
    # LPS, non-cubic, anisotropic but below the separate-z threshold
    "lps": ((23, 31, 17), "LPS", (1.1, 0.9, 2.4)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parity_identical_voxels_and_fast_dice(
    case, folders, tmp_path, run_nnunet, affine_of, phantom, per_class_dice
):
    shape, codes, spacing = CASES[case]
    array = phantom(shape, seed=len(case))
    if case == "pir_separate_z":
        array[:2] = 0
    path = _write(tmp_path, array, affine_of(codes, spacing))
    expected = run_nnunet(folders["aniso"], path)  # nnU-Net with mirroring off
    no_tta = SegmentOptions(mirroring=False)
    got = Segmenter(model_dir=folders["aniso"], device="cpu", parity=True, options=no_tta)(path)
    assert got.shape == shape and np.array_equal(np.asarray(got.array), expected)
    assert dict(got.labels) == {1: "class_1", 2: "class_2", 3: "class_3", 4: "class_4"}
    fast = Segmenter(model_dir=folders["aniso"], device="cpu", options=no_tta)(path)
    assert all(d >= 0.999 for d in per_class_dice(np.asarray(fast.array), expected).values())


def test_parity_with_mirroring_on_oblique_affine(folders, tmp_path, run_nnunet, phantom, affine_of):
    path = _write(tmp_path, phantom((18, 26, 15), seed=5), affine_of("oblique", (1.3, 0.9, 2.0)))
    expected = run_nnunet(folders["aniso"], path, mirroring=True)
    got = Segmenter(model_dir=folders["aniso"], device="cpu", parity=True)(path)
    assert np.array_equal(np.asarray(got.array), expected)
    np.testing.assert_allclose(got.affine, nib.load(path).affine)


def test_parity_on_example_ct(shared_data, folders, tmp_path, run_nnunet, per_class_dice):
    path = shared_data / "example_ct_sm.nii.gz"
    expected = run_nnunet(folders["iso3"], path)
    got = Segmenter(model_dir=folders["iso3"], device="cpu", parity=True)(path)
    assert np.array_equal(np.asarray(got.array), expected)
    fast = Segmenter(model_dir=folders["iso3"], device="cpu")(path)
    dice = per_class_dice(np.asarray(fast.array), expected)
    assert dice and all(d >= 0.999 for d in dice.values()), dice


def test_mirroring_follows_the_checkpoint_and_the_option(folders, tmp_path, phantom, affine_of):
    path = _write(tmp_path, phantom((20, 20, 20)), affine_of("RAS", (1.0, 1.0, 1.0)))
    on = Segmenter(model_dir=folders["aniso"], device="cpu")
    off = Segmenter(
        model_dir=folders["aniso"], device="cpu", options=SegmentOptions(mirroring=False)
    )
    assert on.parts[0].predictor.window.mirror_axes == (0, 1, 2)
    assert off.parts[0].predictor.window.mirror_axes is None
    never = Segmenter(model_dir=folders["iso3"], device="cpu")  # checkpoint stores None
    assert never.parts[0].predictor.window.mirror_axes is None
    assert on(path).shape == (20, 20, 20)
