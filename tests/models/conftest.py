"""Shared fixtures of the model tests: tiny random-init model folders and an empty home."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

TINY: dict[str, Any] = {
    "n_classes": 3,
    "patch_size": (16, 16, 16),
    "spacing_mm": (2.0, 1.5, 1.5),
    "features_per_stage": (4, 8, 16),
    "strides": ((1, 1, 1), (2, 2, 2), (2, 2, 2)),
    "kernel_sizes": ((3, 3, 3), (3, 3, 3), (3, 3, 3)),
}


@pytest.fixture
def tiny_kwargs() -> dict[str, Any]:
    """Keyword arguments of `random_model_folder` for a tiny 3-stage network."""
    return dict(TINY)


@pytest.fixture(scope="session")
def nnunet_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """nnunetv2 reads these at import time (and prints warnings without them)."""
    base = tmp_path_factory.mktemp("nnunet_env")
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ.setdefault(name, str(base / name))


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PlainConvUNet model folder with folds 0 and 1 (read-only: copy before editing)."""
    from totalseg.models.writer import random_model_folder

    dest = (
        tmp_path_factory.mktemp("tiny")
        / "Dataset999_Tiny"
        / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    )
    return random_model_folder(
        dest, **TINY, folds=(0, 1), trainer_name="nnUNetTrainer", mirror_axes=(0, 1, 2)
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty totalseg home, selected through TOTALSEG_HOME."""
    path = tmp_path / "home"
    monkeypatch.setenv("TOTALSEG_HOME", str(path))
    return path
