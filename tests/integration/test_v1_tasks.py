"""The v1 tasks end to end on hand-made random v1 folders (no nnU-Net 1 needed): part
selection by roi_subset, output ids and grid, the CLI, TotalSegmentator 1.x installs in place."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tests.v1_folders import hand_v1_model_folder

from totalseg.anatomy import class_map, part_maps
from totalseg.models.tasks import weights_entry
from totalseg.models.weights import find_model_folder
from totalseg.pipeline import Segmenter


def _install(root: Path, task_id: int, n_classes: int) -> Path:
    entry = weights_entry(task_id)
    trainer = entry.trainer
    return hand_v1_model_folder(root, entry.folder, n_classes, trainer=trainer, seed=task_id)


@pytest.fixture(scope="module")
def v1_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("v1home")
    for task_id, names in part_maps("v1").items():
        _install(home / "weights", task_id, len(names))
    _install(home / "weights", 256, 104)
    return home


@pytest.fixture
def ct(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    data = rng.normal(0, 400, (23, 19, 15)).astype(np.int16)
    affine = np.diag([-1.9, 2.1, 2.4, 1.0])
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_total_v1_fast_gives_v1_ids_on_the_input_grid(v1_home: Path, ct: Path) -> None:
    got = Segmenter(task="total-v1-fast", device="cpu", home=v1_home)(ct)
    assert got.array.shape == (23, 19, 15)
    np.testing.assert_allclose(got.affine, nib.load(ct).affine)
    assert got.labels == class_map("v1") and set(np.unique(got.array)) <= {0, *class_map("v1")}


def test_roi_subset_runs_only_the_parts_holding_the_structures(v1_home: Path, ct: Path) -> None:
    seg = Segmenter(task="total-v1", device="cpu", home=v1_home, roi_subset=["liver", "sacrum"])
    assert [p.name for p in seg.parts] == [
        weights_entry(251).folder,
        weights_entry(254).folder,
    ]
    got = seg(ct)
    assert set(got.labels.values()) == {"liver", "sacrum"}
    assert set(np.unique(got.array)) <= {0, *got.labels}


def test_cli_runs_a_v1_model_dir(v1_home: Path, ct: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from totalseg.cli.app import app

    model = v1_home / "weights" / weights_entry(256).relpath
    out = tmp_path / "seg.nii.gz"
    result = CliRunner().invoke(
        app, ["segment", "-i", str(ct), "-o", str(out), "--ml", "--model-dir", str(model.parent)]
    )
    assert result.exit_code == 0, result.output
    assert nib.load(out).shape == (23, 19, 15)


def test_totalsegmentator_1_installs_are_used_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TotalSegmentator 1.x unzipped its weights into <weights path>/nnUNet/3d_fullres/."""
    theirs = tmp_path / "ts" / "nnUNet" / "3d_fullres"
    model = _install(theirs, 256, 104)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "ts"))
    assert find_model_folder(256, home=tmp_path / "home") == model
