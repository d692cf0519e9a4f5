from __future__ import annotations

import subprocess
import sys
from pathlib import PurePosixPath

import pytest

from totalseg.errors import ConfigError
from totalseg.models.tasks import (
    get_task,
    list_tasks,
    list_weights,
    model_folder_name,
    weights_entry,
)


def test_tasks_load_and_are_consistent_with_weights() -> None:
    names = [t.name for t in list_tasks()]
    assert names[:3] == ["total", "total-fast", "total-fastest"]
    total = get_task("total")
    assert total.datasets == (291, 292, 293, 294, 295)
    assert total.spacing_mm == 1.5 and total.tile_step == 0.8 and total.class_map == "v2"
    for task in list_tasks():
        for entry in task.weights:
            assert entry.trainer == task.trainer
            assert entry.folder.startswith(("Dataset", "Task"))


def test_model_folder_names_match_reference_layout() -> None:
    assert model_folder_name(291) == PurePosixPath(
        "Dataset291_TotalSegmentator_part1_organs_1559subj/"
        "nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres"
    )
    assert model_folder_name(297) == PurePosixPath(
        "Dataset297_TotalSegmentator_total_3mm_1559subj/"
        "nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres"
    )
    e = weights_entry(292)
    assert e.url == (
        "https://github.com/wasserth/TotalSegmentator/releases/download/v2.0.0-weights/"
        "Dataset292_TotalSegmentator_part2_vertebrae_1532subj.zip"
    )
    # official hashes are not known offline (see weights.json); the shipped demo's is pinned
    official = [w for w in list_weights() if w.format != "bundled"]
    assert official and all(w.sha256 is None for w in official)


def test_unknown_task_suggests_names() -> None:
    with pytest.raises(ConfigError, match=r"Unknown task 'totl'\. Did you mean 'total'"):
        get_task("totl")


def test_unknown_dataset_id() -> None:
    with pytest.raises(ConfigError, match="No official weights are known for dataset 123"):
        weights_entry(123)


def test_torch_free_imports() -> None:
    code = (
        "import sys, totalseg.models, totalseg.models.tasks, totalseg.models.weights, "
        "totalseg.models.plan, totalseg.cli.app; "
        "totalseg.models.get_task('total'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
