"""Fixtures for inference tests: tiny random nnU-Net folders and an nnunetv2 predictor on them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """4 classes, 2 folds, mirroring allowed, anisotropic target spacing, patch 16x24x20."""
    from totalseg.models.writer import random_model_folder

    return random_model_folder(
        tmp_path_factory.mktemp("inference") / "Dataset901_Tiny" / "nnUNetTrainer__3d_fullres",
        n_classes=4, patch_size=(16, 24, 20), spacing_mm=(2.0, 1.0, 1.2),
        features_per_stage=(4, 8, 16), strides=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
        kernel_sizes=((3, 3, 3),) * 3, seed=3, folds=(0, 1), mirror_axes=(0, 1, 2),
        trainer_name="nnUNetTrainer",
    )  # fmt: skip


@pytest.fixture
def nnunet_predictor(monkeypatch):
    """A factory: nnunetv2's nnUNetPredictor initialised from a folder, on the CPU.

    nnunetv2 looks the trainer class up by importing every trainer module, and one of them pulls
    timm/torchvision, whose compiled ops do not load in this CPU environment; the stock trainers
    build their network identically, so the lookup is pointed at `nnUNetTrainer`.
    """
    predict = pytest.importorskip("nnunetv2.inference.predict_from_raw_data")
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    monkeypatch.setattr(predict, "recursive_find_trainer_class_by_name", lambda name: nnUNetTrainer)

    def make(folder: Path, *, tile_step: float = 0.5, mirroring: bool = False, folds=None):
        p = predict.nnUNetPredictor(
            tile_step_size=tile_step, use_gaussian=True, use_mirroring=mirroring,
            perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
            verbose_preprocessing=False, allow_tqdm=False,
        )  # fmt: skip
        p.initialize_from_trained_model_folder(str(folder), use_folds=folds)
        return p

    return make
