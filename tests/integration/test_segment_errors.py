"""Every user-facing error of `segment` / `Segmenter`, each one clear line."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from totalseg.errors import (
    ConfigError,
    InputError,
    ModelError,
    UnknownStructureError,
    WeightsNotFoundError,
)
from totalseg.image import Image
from totalseg.pipeline import Segmenter, SegmentOptions, segment

TINY = {
    "features_per_stage": (4, 8, 16),
    "strides": ((1, 1, 1), (2, 2, 2), (2, 2, 2)),
    "kernel_sizes": ((3, 3, 3),) * 3,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from totalseg.models.writer import random_model_folder

    return random_model_folder(
        tmp_path_factory.mktemp("err") / "m", n_classes=2, patch_size=(16, 16, 16),
        spacing_mm=1.0, label_names=["liver", "spleen"], **TINY,
    )  # fmt: skip


def _image(shape=(20, 20, 20), dtype=np.int16) -> Image:
    return Image(np.zeros(shape, dtype=dtype), np.diag([1.0, 1.0, 1.0, 1.0]))


def test_missing_weights_for_a_task(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"weights of dataset 291 .* are not installed"):
        segment(_image(), task="total", device="cpu", options=SegmentOptions(home=tmp_path))


def test_unknown_task():
    with pytest.raises(ConfigError, match="Unknown task 'totl'"):
        Segmenter("totl", device="cpu")


def test_wrong_number_of_input_channels(tmp_path):
    from totalseg.models.writer import random_model_folder

    two = random_model_folder(
        tmp_path / "two", n_classes=2, patch_size=(16, 16, 16), spacing_mm=1.0, n_channels=2, **TINY
    )
    with pytest.raises(InputError, match=r"Expected 2 input channel\(s\)"):
        segment(_image(), model_dir=two, device="cpu")


def test_plan_checkpoint_mismatch(folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    plans = json.loads((broken / "plans.json").read_text())
    arch = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    arch["features_per_stage"] = [4, 8, 24]
    (broken / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(
        ModelError, match=r"Checkpoint does not match the PlainConvUNet of plans\.json"
    ):
        segment(_image(), model_dir=broken, device="cpu")


def test_missing_model_folder(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="Expected a model folder"):
        segment(_image(), model_dir=tmp_path / "nope", device="cpu")


@pytest.mark.parametrize("shape", [(20, 20), (20, 20, 20, 2)])
def test_2d_and_4d_inputs(folder, tmp_path, shape):
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(shape, dtype=np.int16), np.eye(4)), path)
    with pytest.raises(InputError, match=r"Expected a 3D volume, got shape"):
        segment(path, model_dir=folder, device="cpu")


def test_nan_voxels(folder):
    array = np.zeros((20, 20, 20), dtype=np.float32)
    array[1, 2, 3] = array[4, 5, 6] = array[7, 8, 9] = np.nan
    with pytest.raises(InputError, match=r"(?i)expected finite HU values, got 3 NaN voxels"):
        segment(Image(array, np.eye(4)), model_dir=folder, device="cpu")
    array[0, 0, 0] = np.inf
    with pytest.raises(InputError, match="got 3 NaN and 1 infinite voxels"):
        segment(Image(array, np.eye(4)), model_dir=folder, device="cpu")


def test_unknown_roi_names(folder, tmp_path):
    with pytest.raises(
        UnknownStructureError, match=r"Unknown structure 'livr'\. Did you mean 'liver'"
    ):
        Segmenter("total", device="cpu", roi_subset=["livr"], options=SegmentOptions(home=tmp_path))
    with pytest.raises(
        UnknownStructureError, match=r"Unknown structure 'splen' for this model.*'spleen'"
    ):
        Segmenter(model_dir=folder, device="cpu", roi_subset=["splen"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device(folder):
    with pytest.raises(ConfigError, match="Expected an available CUDA device"):
        Segmenter(model_dir=folder, device="cuda")


def test_bad_resampling_order():
    with pytest.raises(ConfigError, match=r"Expected a resampling order in 0\.\.5"):
        SegmentOptions(resampling_order=7)


def test_model_dir_roi_subset_keeps_only_those_labels(folder):
    image = Image(np.random.default_rng(0).normal(0, 300, (24, 20, 18)).astype(np.int16), np.eye(4))
    out = Segmenter(model_dir=folder, device="cpu", roi_subset=["spleen"])(image)
    assert dict(out.labels) == {2: "spleen"} and set(out.present_labels()) <= {2}
