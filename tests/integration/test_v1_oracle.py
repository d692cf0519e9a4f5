"""nnU-Net 1 parity: v1 model folders written by nnU-Net 1's own planner and trainer, run by
nnU-Net 1's predictor (`nnunet==1.7.1`, a test-only oracle) and by totalseg.

Install the oracle with `pip install --no-deps "nnunet==1.7.1" "medpy==0.5.2"` (the extra
`oracle-v1`; see tests/nnunet1_oracle.py); the tests skip with that reason without it. The v1
path has no fast mode on the CPU: its arithmetic is always nnU-Net 1's (float32 softmax
accumulation), so the label maps are compared voxel for voxel. Run the slow ones with
`pytest -m slow tests/integration/test_v1_oracle.py`.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from tests.nnunet1_oracle import nnunet1_predict, require_nnunet1, write_v1_model_folder

from totalseg.pipeline import Segmenter

EXAMPLE_CT = Path(__file__).parents[2] / "../shared/data/totalsegmentator/example_ct_sm.nii.gz"


def _ct(shape, seed: int) -> np.ndarray:
    """Smooth blobs on a body-like background, int16 HU (random weights need texture)."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.5)
    body = np.zeros(shape)  # zero outside: nnU-Net crops it away
    inside = (slice(2, -2), slice(2, -2), slice(1, -1))  # a zero-free border would not crop
    body[inside] = (40 + 900 * noise / noise.std())[inside]
    return body.astype(np.int16)


def _write(path: Path, shape, affine: np.ndarray, seed: int) -> Path:
    nib.save(nib.Nifti1Image(_ct(shape, seed), affine), path)
    return path


def _affine(codes: str, spacing) -> np.ndarray:
    axes = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    affine = np.zeros((4, 4))
    for col, code in enumerate(codes):
        row, sign = axes[code]
        affine[row, col] = sign * spacing[col]
    affine[:3, 3] = (12.5, -30.0, 7.25)
    affine[3, 3] = 1
    return affine


@pytest.fixture(scope="module")
def aniso_model(tmp_path_factory) -> Path:
    """Spacing ratio 5 > 3: separate z, first-level kernels 1x3x3, numpy.core pickles."""
    require_nnunet1()
    return write_v1_model_folder(
        tmp_path_factory.mktemp("v1aniso"), "Task901_Aniso",
        spacing_zyx=(5.0, 1.0, 1.0), size_zyx=(12, 40, 36), n_classes=3,
    )  # fmt: skip


def test_anisotropic_plan_matches_nnunet1(aniso_model: Path, tmp_path: Path) -> None:
    """LPS input at 0.9 x 1.1 x 4.2 mm: v1's separate-z resampling in preprocessing and export,
    mirroring on (nnU-Net 1's default for nnUNetTrainerV2)."""
    import pickle

    plans = pickle.loads((aniso_model / "plans.pkl").read_bytes())  # our own test file
    assert plans["plans_per_stage"][0]["conv_kernel_sizes"][0] == [1, 3, 3]
    assert b"numpy.core.multiarray" in (aniso_model / "plans.pkl").read_bytes()
    image = _write(tmp_path / "ct.nii.gz", (33, 45, 14), _affine("LPS", (1.1, 0.9, 4.2)), 1)
    expected = nnunet1_predict(aniso_model, image, tmp_path / "v1.nii.gz")
    got = Segmenter(model_dir=aniso_model, device="cpu")(image)
    assert len(np.unique(expected)) >= 2, "too few classes to compare"
    np.testing.assert_array_equal(np.asarray(got.array), expected)
    np.testing.assert_allclose(got.affine, nib.load(image).affine, atol=1e-6)


def test_postprocessing_json_is_applied_like_nnunet1(aniso_model: Path, tmp_path: Path) -> None:
    import json
    import shutil

    model = tmp_path / "Task901_Aniso" / aniso_model.name
    shutil.copytree(aniso_model, model)
    pp = {"for_which_classes": [1, 3], "min_valid_object_sizes": "{1: 40.0, 3: 0.0}"}
    (model / "postprocessing.json").write_text(json.dumps(pp))
    image = _write(tmp_path / "ct.nii.gz", (30, 41, 13), _affine("RAS", (1.2, 1.0, 4.5)), 5)
    expected = nnunet1_predict(model, image, tmp_path / "v1.nii.gz", tta=False)
    got = Segmenter(model_dir=model, device="cpu", mirroring=False)(image)
    np.testing.assert_array_equal(np.asarray(got.array), expected)
    plain = Segmenter(model_dir=aniso_model, device="cpu", mirroring=False)(image)
    assert (np.asarray(plain.array) != expected).any(), "postprocessing removed nothing"


@pytest.mark.slow
def test_isotropic_two_folds_non_ras_matches_nnunet1(tmp_path: Path) -> None:
    """PIR input, two folds averaged, probabilities resampled back (order 1) at export."""
    model = write_v1_model_folder(
        tmp_path / "m", "Task902_Iso", spacing_zyx=(1.5, 1.5, 1.5), size_zyx=(28, 30, 26),
        n_classes=4, folds=(0, 1),
    )  # fmt: skip
    image = _write(tmp_path / "ct.nii.gz", (31, 23, 27), _affine("PIR", (1.3, 1.7, 1.2)), 2)
    expected = nnunet1_predict(model, image, tmp_path / "v1.nii.gz", folds=(0, 1))
    got = Segmenter(model_dir=model, device="cpu")(image)
    assert len(np.unique(expected)) >= 2
    np.testing.assert_array_equal(np.asarray(got.array), expected)


def _totalsegmentator_v1(
    path: Path, models: dict[int, Path], spacing: float, tmp: Path
) -> np.ndarray:
    """A paraphrase of TotalSegmentator 1.5.x's `nnUNet_predict_image` driving nnU-Net 1:
    float64 copy -> closest canonical -> ndimage.zoom(order=3) to `spacing` (scipy's default
    mode), int32 -> nnU-Net 1 `predict_cases_fastest` per part (step 0.5, no TTA, fold 0) ->
    merge local labels into the v1 ids by name, later parts overwriting -> order-0 zoom back to
    the canonical shape on the canonical affine -> original orientation."""
    from totalseg.anatomy import class_map, part_maps

    original = nib.load(path)
    img = nib.as_closest_canonical(nib.Nifti1Image(original.get_fdata(), original.affine))
    zoom = np.array(img.header.get_zooms()) / spacing
    affine = img.affine.copy()
    affine[:3, :3] = affine[:3, :3] / zoom[None, :]
    data = ndimage.zoom(img.get_fdata(), zoom, order=3).astype(np.int32)
    nib.save(nib.Nifti1Image(data, affine), tmp / "s01_0000.nii.gz")
    inverse = {name: i for i, name in class_map("v1").items()}
    merged = np.zeros(data.shape, dtype=np.uint8)
    for task_id, model in models.items():
        seg = nnunet1_predict(
            model, tmp / "s01_0000.nii.gz", tmp / f"s01_{task_id}.nii.gz", mode="fastest",
            tta=False,
        )  # fmt: skip
        if task_id not in part_maps("v1"):
            merged = seg.astype(np.uint8)
            continue
        for local, name in part_maps("v1")[task_id].items():
            merged[seg == local] = inverse[name]
    back = ndimage.zoom(merged, np.array(img.shape) / np.array(merged.shape), order=0)
    canonical = nib.Nifti1Image(back.astype(np.uint8), img.affine)
    to_original = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt("RAS"), nib.orientations.io_orientation(original.affine)
    )
    return np.asarray(canonical.as_reoriented(to_original).dataobj)


def _install(home: Path, task_id: int, n_classes: int, spacing: float, size) -> Path:
    from totalseg.models.tasks import weights_entry

    entry = weights_entry(task_id)
    model = write_v1_model_folder(
        home / "src", entry.folder, spacing_zyx=(spacing,) * 3, size_zyx=size,
        n_classes=n_classes, trainer=entry.trainer, seed=task_id,
    )  # fmt: skip
    dest = home / "weights" / entry.folder / entry.model
    dest.parent.mkdir(parents=True, exist_ok=True)
    model.rename(dest)
    return dest


@pytest.mark.slow
def test_total_v1_fast_matches_totalsegmentator_1(tmp_path: Path) -> None:
    """Task256 (104 v1 ids directly, 3 mm) on an LAS input at 2.2 x 2.6 x 3.4 mm."""
    require_nnunet1()
    model = _install(tmp_path, 256, 104, 3.0, (24, 28, 26))
    image = _write(tmp_path / "ct.nii.gz", (37, 30, 21), _affine("LAS", (2.2, 2.6, 3.4)), 3)
    (tmp_path / "ref").mkdir()
    expected = _totalsegmentator_v1(image, {256: model}, 3.0, tmp_path / "ref")
    got = Segmenter(task="total-v1-fast", device="cpu", home=tmp_path)(image)
    assert len(np.unique(expected)) > 3, "too few classes found to compare"
    np.testing.assert_array_equal(np.asarray(got.array), expected)


@pytest.mark.slow
def test_total_v1_five_parts_match_totalsegmentator_1(tmp_path: Path) -> None:
    """Tasks 251-255 (1.5 mm) merged into the 104 v1 ids; roi_subset runs only its parts."""
    from totalseg.anatomy import part_maps

    require_nnunet1()
    models = {
        task_id: _install(tmp_path, task_id, len(names), 1.5, (22, 24, 20))
        for task_id, names in part_maps("v1").items()
    }
    image = _write(tmp_path / "ct.nii.gz", (26, 22, 19), _affine("RPS", (1.3, 1.6, 1.8)), 4)
    (tmp_path / "ref").mkdir()
    expected = _totalsegmentator_v1(image, models, 1.5, tmp_path / "ref")
    got = Segmenter(task="total-v1", device="cpu", home=tmp_path)(image)
    assert len(np.unique(expected)) > 5, "too few classes found to compare"
    np.testing.assert_array_equal(np.asarray(got.array), expected)
    wanted = ["liver", "rib_left_3"]
    roi = Segmenter(task="total-v1", device="cpu", home=tmp_path, roi_subset=wanted)
    assert [p.name for p in roi.parts] == [models[251].parent.name, models[255].parent.name]
    kept = np.isin(expected, list(roi.labels))
    np.testing.assert_array_equal(np.asarray(roi(image).array), np.where(kept, expected, 0))


@pytest.mark.slow
@pytest.mark.skipif(not EXAMPLE_CT.is_file(), reason="../shared/data/totalsegmentator is absent")
def test_totalsegmentator_sized_model_on_the_example_ct(tmp_path: Path) -> None:
    """A Task256-sized random model (base 32 features, TotalSegmentator-like 3 mm median shape)
    on the real example CT through nnU-Net 1's `predict_cases`, no mirroring (step 0.5)."""
    model = write_v1_model_folder(
        tmp_path / "m", "Task256_TotalSegmentator_3mm_1139subj", spacing_zyx=(3.0, 3.0, 3.0),
        size_zyx=(160, 170, 170), n_classes=104, trainer="nnUNetTrainerV2_ep8000_nomirror",
        base_features=32,
    )  # fmt: skip
    expected = nnunet1_predict(model, EXAMPLE_CT, tmp_path / "v1.nii.gz", tta=False)
    got = Segmenter(model_dir=model, device="cpu", mirroring=False)(EXAMPLE_CT)
    assert len(np.unique(expected)) > 3
    np.testing.assert_array_equal(np.asarray(got.array), expected)
