"""The demo model shipped in the package: task `demo`, found without a home folder, pinned by
sha256, and good enough on a new phantom; `totalseg demo` end to end (offline)."""

from __future__ import annotations

import dataclasses
import json
import socket

import numpy as np
import pytest
import torch

from totalseg.anatomy import class_map
from totalseg.cli.app import main
from totalseg.errors import WeightsNotFoundError
from totalseg.models.download import sha256_file
from totalseg.models.folder import load_model_folder
from totalseg.models.release import download_weights
from totalseg.models.tasks import get_task, weights_entry
from totalseg.models.weights import bundled_model_folder, find_model_folder


@pytest.fixture(autouse=True)
def _offline_and_two_threads(monkeypatch):
    """No network at all (the demo must work offline), two CPU threads."""

    def refuse(sock, address, *args):
        raise AssertionError(f"tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_demo_task_is_a_bundled_v1_model_at_3mm(tmp_path) -> None:
    task = get_task("demo")
    assert task.class_map == "v1" and task.spacing_mm == 3.0 and task.roi_crop_task is None
    (dataset_id,) = task.datasets
    entry = weights_entry(dataset_id)
    assert entry.format == "bundled" and entry.sha256 is not None
    folder = find_model_folder(dataset_id, home=tmp_path / "empty_home")
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    assert sha256_file(checkpoint) == entry.sha256
    assert checkpoint.stat().st_size == entry.size_bytes < 25e6
    model = load_model_folder(folder)
    assert dict(model.dataset.class_names) == class_map("v1")
    assert model.plan.spacing_mm == (3.0, 3.0, 3.0)
    # "downloading" a bundled model hands back the shipped folder
    assert download_weights("demo", home=tmp_path / "empty_home") == [folder]


def test_a_changed_shipped_checkpoint_is_refused() -> None:
    entry = dataclasses.replace(weights_entry(get_task("demo").datasets[0]), sha256="0" * 64)
    with pytest.raises(WeightsNotFoundError, match="reinstall totalseg"):
        bundled_model_folder(entry)


def test_totalseg_demo_segments_a_new_phantom(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--fov", "abdomen", "--spacing-mm", "4", "--seed", "7",
               "--device", "cpu"])  # fmt: skip
    assert rc == 0
    dice = json.loads((out / "dice.json").read_text())
    assert "liver" in dice and len(dice) > 20
    # measured when the model was shipped: mean 0.41 over 69 structures, liver 0.95, kidneys
    # 0.90/0.91, spleen 0.90 (benchmarks/training/README.md); floors leave room for CPU kernels
    assert np.nanmean(list(dice.values())) > 0.35, dice
    assert min(dice["liver"], dice["spleen"], dice["kidney_left"], dice["kidney_right"]) > 0.85
    stdout = capsys.readouterr().out
    assert "Mean Dice over" in stdout
    assert "Note: the demo model was trained on synthetic phantoms only" in stdout
    assert (out / "segmentations" / "liver.nii.gz").is_file()
    # the phantom it wrote carries the marker, so `segment --task demo` on it does not warn
    # (tests/cli/test_cli_first_day.py)
    from totalseg.io import is_phantom_file

    assert is_phantom_file(out / "ct.nii.gz")
