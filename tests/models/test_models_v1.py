"""nnU-Net 1 model folders: the allow-list unpickler, plans, strict loading, names, import."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.v1_folders import hand_v1_model_folder, v1_plans

from totalseg.errors import ConfigError, ModelError, UnsafeCheckpointError
from totalseg.models.folder import load_model_folder
from totalseg.models.v1.plans import read_v1_plans
from totalseg.models.v1.unpickle import loads_v1_pickle, read_v1_pickle
from totalseg.models.weights import find_model_folder, import_weights, list_installed


class _Hostile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_reads_numpy_core_and_numpy_2_names() -> None:
    plans = v1_plans(3)
    v2_bytes = pickle.dumps(plans, protocol=4)  # numpy 2 names numpy._core.*
    assert b"numpy._core" in v2_bytes
    v1_bytes = pickle.dumps(plans, protocol=2).replace(b"cnumpy._core.", b"cnumpy.core.")
    assert b"numpy.core.multiarray" in v1_bytes and b"numpy._core" not in v1_bytes
    for data in (v2_bytes, v1_bytes):
        got = loads_v1_pickle(data)
        stage = got["plans_per_stage"][0]
        np.testing.assert_array_equal(stage["patch_size"], [16, 16, 16])
        assert isinstance(got["dataset_properties"]["intensityproperties"][0]["sd"], np.float64)
        assert got["normalization_schemes"] == {0: "CT"}
        assert stage["do_dummy_2D_data_aug"] is np.False_
    assert loads_v1_pickle(pickle.dumps({"d": np.dtype("f4"), "s": {1, 2}}))["d"] == np.float32


def test_hostile_plans_pkl_is_refused_without_running_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = hand_v1_model_folder(tmp_path, "Task901_Tiny", 3)
    (model / "plans.pkl").write_bytes(pickle.dumps({"plans_per_stage": _Hostile(marker)}))
    with pytest.raises(UnsafeCheckpointError, match=r"forbidden global posix\.system"):
        read_v1_pickle(model / "plans.pkl")
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system"):
        import_weights(tmp_path / "Task901_Tiny", home=tmp_path / "home")
    assert not marker.exists()


def test_hostile_checkpoint_files_are_refused_without_running_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = hand_v1_model_folder(tmp_path, "Task901_Tiny", 3)
    pkl = model / "fold_0" / "model_final_checkpoint.model.pkl"
    good = pkl.read_bytes()
    pkl.write_bytes(pickle.dumps({"plans": {}, "name": _Hostile(marker)}))
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system"):
        load_model_folder(model)
    pkl.write_bytes(good)
    torch.save({"state_dict": {}, "x": _Hostile(marker)}, model / "fold_0" / pkl.stem)
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system"):
        load_model_folder(model)
    assert not marker.exists()


def test_loads_strictly_with_registry_names(tmp_path: Path) -> None:
    model = load_model_folder(hand_v1_model_folder(tmp_path, "Task251_x", 17))
    assert model.format == "nnunet_v1" and model.mirror_axes is None
    assert model.dataset.class_names[1] == "spleen" and model.n_out == 18
    assert model.folds == (0,) and model.plan.normalization_schemes == ("CT",)
    assert model.plan.intensity_properties[0].std == 160.25
    other = load_model_folder(
        hand_v1_model_folder(tmp_path, "Task902_y", 2, trainer="nnUNetTrainerV2")
    )
    assert other.dataset.class_names == {1: "label_1", 2: "label_2"}
    assert other.mirror_axes == (0, 1, 2)
    x = torch.randn(1, 1, 16, 16, 16)
    assert other.networks[0](x).shape == (1, 3, 16, 16, 16)


def test_mismatched_weights_are_named(tmp_path: Path) -> None:
    model = hand_v1_model_folder(tmp_path, "Task901_Tiny", 3)
    path = model / "fold_0" / "model_final_checkpoint.model"
    ckpt = torch.load(path, weights_only=False)
    del ckpt["state_dict"]["tu.0.weight"]
    torch.save(ckpt, path)
    with pytest.raises(ModelError, match=r"1 missing key\(s\) \(tu\.0\.weight\)"):
        load_model_folder(model)


def test_unsupported_plans_and_trainers(tmp_path: Path) -> None:
    plans = v1_plans(3)
    plans["normalization_schemes"] = {0: "MRI"}
    with pytest.raises(ConfigError, match=r"v1 normalisation schemes .*'MRI'"):
        read_v1_plans(plans, 0)
    plans = v1_plans(3)
    plans["plans_per_stage"][0]["patch_size"] = np.array([16, 16])
    with pytest.raises(ConfigError, match="2D v1 models are not supported"):
        read_v1_plans(plans, 0)
    model = hand_v1_model_folder(tmp_path, "Task901_Tiny", 3, trainer="nnUNetTrainer")
    with pytest.raises(ModelError, match=r"nnUNetTrainerV2\* model .*'nnUNetTrainer'"):
        load_model_folder(model)
    with pytest.raises(ModelError, match="not a readable nnU-Net 1 pickle"):
        loads_v1_pickle(b"\x80\x04garbage")


def test_imports_a_v1_release_zip(tmp_path: Path) -> None:
    """The v1.5.6 zips hold TaskXXX_Name/<trainer>__<plans>/ (unzipped into nnUNet/3d_fullres)."""
    hand_v1_model_folder(tmp_path / "src", "Task256_TotalSegmentator_3mm_1139subj", 104)
    archive = tmp_path / "Task256_TotalSegmentator_3mm_1139subj.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "src").rglob("*")):
            zf.write(path, path.relative_to(tmp_path / "src").as_posix())
    home = tmp_path / "home"
    (installed,) = import_weights(archive, home=home)
    assert installed.parent.name == "Task256_TotalSegmentator_3mm_1139subj"
    assert installed.name == "nnUNetTrainerV2_ep4000_nomirror__nnUNetPlansv2.1"
    (entry,) = list_installed(home)
    assert entry.dataset_id == 256 and entry.folds == ("fold_0",)
    assert find_model_folder(256, home=home) == installed
    model = load_model_folder(installed)
    assert model.dataset.class_names[104] == "urinary_bladder"


def test_folder_error_paths(tmp_path: Path) -> None:
    from totalseg.errors import WeightsNotFoundError
    from totalseg.inference.v1 import V1Predictor

    path = hand_v1_model_folder(tmp_path, "Task901_Tiny", 3)
    with pytest.raises(WeightsNotFoundError, match=r"Expected \['fold_3'\] with model_final"):
        load_model_folder(path, folds=3)
    (path / "postprocessing.json").write_text(
        '{"for_which_classes": [1], "min_valid_object_sizes": "os"}'
    )
    with pytest.raises(ModelError, match="is not nnU-Net 1 postprocessing"):
        V1Predictor(load_model_folder(path))
    for key, value, message in (
        ("use_mask_for_norm", {0: True}, "normalised inside the nonzero mask"),
        ("preprocessor_name", "PreprocessorFor2D", "GenericPreprocessor, got 'PreprocessorFor2D'"),
    ):
        plans = v1_plans(3)
        plans[key] = value
        with pytest.raises(ConfigError, match=message):
            read_v1_plans(plans, 0)
