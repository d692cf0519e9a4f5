"""The reference tool's other tasks (lung_vessels, total_mr, body, ...): registration with their
class maps and semantics, and `segment --task ...` end to end on tiny random-init weights."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from totalseg.anatomy import class_map, part_maps
from totalseg.cli.app import main
from totalseg.io import read_label_map
from totalseg.models.tasks import CropSpec, get_task, list_tasks, weights_entry
from totalseg.pipeline import Segmenter, SegmentOptions

TINY = {
    "patch_size": (16, 16, 16),
    "features_per_stage": (4, 8),
    "strides": ((1, 1, 1), (2, 2, 2)),
    "kernel_sizes": ((3, 3, 3),) * 2,
}
LOBES = (
    "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
    "lung_middle_lobe_right", "lung_lower_lobe_right",
)  # fmt: skip


def model_spacing(task: str) -> tuple[float, float, float]:
    """The plan spacing (nnU-Net array order, z first) a task's model was trained at."""
    spacing = get_task(task).spacing_mm
    if spacing is None:
        return (1.5, 1.2, 1.2)
    if isinstance(spacing, tuple):
        return (spacing[2], spacing[1], spacing[0])
    return (spacing,) * 3


def install_random(home: Path, task: str, seed: int = 0) -> None:
    """Random-init model folders for every dataset of `task`, in the official layout."""
    from totalseg.models.writer import random_model_folder

    spec = get_task(task)
    parts = part_maps(spec.class_map)
    for dataset_id in spec.datasets:
        entry = weights_entry(dataset_id)
        names = list((parts.get(dataset_id) or class_map(spec.class_map)).values())
        dest = home / "weights" / entry.folder / entry.model
        if not dest.exists():
            random_model_folder(
                dest, n_classes=len(names), label_names=names, spacing_mm=model_spacing(task),
                seed=seed + dataset_id, trainer_name=entry.trainer,
                configuration=entry.model.split("__")[-1], **TINY,
            )  # fmt: skip


@pytest.fixture(scope="module")
def task_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("task_home")
    for task in ("total-fast", "total-fastest", "lung_vessels", "liver_vessels", "total_mr"):
        install_random(home, task, seed=4)  # seed 4: the crop models find lobes and liver
    return home


def assert_inside_crop(result: np.ndarray, rough: object, names: tuple[str, ...], ct: Path) -> None:
    """Nothing outside the box of `names` in the crop model's result, plus 20 mm."""
    found = np.isin(rough.array, [i for i, n in rough.labels.items() if n in names])  # type: ignore[attr-defined]
    assert found.any(), f"the random crop model found none of {names}; pick another seed"
    margin = (20.0 / np.asarray(nib.load(ct).header.get_zooms())).astype(int)
    lo = np.argwhere(found).min(0) - margin
    hi = np.argwhere(found).max(0) + 1 + margin
    inside = np.zeros(found.shape, bool)
    inside[tuple(slice(max(0, a), b) for a, b in zip(lo, hi, strict=True))] = True
    assert not result[~inside].any()


def test_the_reference_tasks_are_registered_with_their_semantics() -> None:
    names = {t.name for t in list_tasks()}
    assert {"total_mr", "lung_vessels", "body", "hip_implant", "pleural_pericard_effusion",
            "cerebral_bleed", "head_glands_cavities", "headneck_bones_vessels",
            "liver_vessels", "total_mr-fast", "body-fast"} <= names  # fmt: skip
    vessels = get_task("lung_vessels")
    assert vessels.spacing_mm == (0.703125, 0.703125, 1.0) and vessels.tile_step == 0.5
    assert vessels.crop == CropSpec("total-fast", LOBES, 20.0)  # robust crop: the 3 mm model
    assert class_map("lung_vessels") == {
        1: "lung_airways", 2: "lung_airways_wall", 3: "lung_arteries", 4: "lung_veins"
    }  # fmt: skip
    assert weights_entry(117).model == "nnUNetTrainerSkeletonRecall__nnUNetPlans__3d_fullres"
    effusion = get_task("pleural_pericard_effusion")
    assert effusion.spacing_mm is None and effusion.folds is None  # native spacing, all folds
    assert get_task("head_glands_cavities").crop == CropSpec("total-fastest", ("skull",), 20.0)
    assert weights_entry(775).model.endswith("__3d_fullres_high")
    mr = get_task("total_mr")
    assert mr.datasets == (850, 851) and mr.tile_step == 0.8 and len(class_map("total_mr")) == 50
    assert sorted(part_maps("total_mr")) == [850, 851] and part_maps("total_mr")[851][21] == "brain"
    assert get_task("liver_lesions_mr").crop == CropSpec("total_mr-fast", ("liver",), 20.0)
    assert get_task("abdominal_muscles").crop == CropSpec("body-fast", ("body_trunc",), 20.0)
    assert get_task("teeth").crop == CropSpec(
        "craniofacial_structures", ("teeth_lower", "teeth_upper"), 10.0
    )  # fmt: skip
    for task in list_tasks():  # every archive is known, every crop structure exists
        assert all(weights_entry(d).folder for d in task.datasets)
        if task.crop is not None:
            crop_names = class_map(get_task(task.crop.task).class_map).values()
            assert set(task.crop.structures) <= set(crop_names), task.name


def test_info_shows_a_task_and_its_classes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "classes", "--task", "lung_vessels"]) == 0
    assert capsys.readouterr().out.split() == [
        "1", "lung_airways", "2", "lung_airways_wall", "3", "lung_arteries", "4", "lung_veins"
    ]  # fmt: skip
    assert main(["info", "tasks"]) == 0
    assert "lung_vessels" in capsys.readouterr().out


def _ct(path: Path, shape=(40, 36, 30), spacing=(1.6, 1.4, 2.0), seed=1) -> Path:
    from tests.integration.conftest import axis_affine, body_phantom

    nib.save(nib.Nifti1Image(body_phantom(shape, seed=seed), axis_affine("LPS", spacing)), path)
    return path


def test_segment_lung_vessels_crops_to_the_lungs(
    task_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOTALSEG_HOME", str(task_home))
    ct = _ct(tmp_path / "ct.nii.gz")
    out = tmp_path / "vessels.nii.gz"
    rc = main(["segment", "-i", str(ct), "-o", str(out), "--ml", "--task", "lung_vessels",
               "--device", "cpu"])  # fmt: skip
    assert rc == 0
    got = read_label_map(out)
    assert dict(got.labels) == class_map("lung_vessels")
    assert got.shape == (40, 36, 30) and np.allclose(got.affine, nib.load(ct).affine)
    # the same run through the API, and the crop it used: the lobes found by the 3 mm model
    options = SegmentOptions(home=task_home, device="cpu")
    api = Segmenter("lung_vessels", options=options)(ct)
    np.testing.assert_array_equal(np.asarray(api.array), np.asarray(got.array))
    rough = Segmenter("total-fast", options=options)(ct)
    assert_inside_crop(np.asarray(api.array), rough, LOBES, ct)


def test_native_spacing_task_and_two_part_mr_task(task_home: Path, tmp_path: Path) -> None:
    options = SegmentOptions(home=task_home, device="cpu")
    ct = _ct(tmp_path / "ct.nii.gz", shape=(30, 28, 22))
    liver = Segmenter("liver_vessels", options=options)(ct)  # crop: liver, native spacing
    assert dict(liver.labels) == {1: "liver_vessels", 2: "liver_tumor"}
    assert liver.shape == (30, 28, 22)
    rough = Segmenter("total-fastest", options=options)(ct)
    assert_inside_crop(np.asarray(liver.array), rough, ("liver",), ct)
    mr = Segmenter("total_mr", options=options)
    assert [p.name for p in mr.parts] == [
        weights_entry(850).folder, weights_entry(851).folder
    ]  # fmt: skip
    labels = mr(ct)
    assert set(labels.present_labels()) <= set(class_map("total_mr"))
    only = Segmenter("total_mr", options=options.replace(roi_subset=("brain",), roi_crop=False))
    assert [p.name for p in only.parts] == [weights_entry(851).folder]  # the part with brain
    with pytest.raises(KeyError, match=r"Unknown structure 'lung_arterys' .* lung_arteries"):
        Segmenter("lung_vessels", options=options.replace(roi_subset=("lung_arterys",)))
