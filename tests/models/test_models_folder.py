"""Reading and writing nnU-Net v2 model folders; nnunetv2 itself as the oracle."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from totalseg.errors import ConfigError, ModelError, UnsafeCheckpointError, WeightsNotFoundError
from totalseg.models.folder import discover_folds, load_model, load_model_folder
from totalseg.models.unet import build_network, initialize_he
from totalseg.models.writer import random_model_folder, write_model_folder


def _copy(folder: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "Dataset999_Tiny" / folder.name
    shutil.copytree(folder, dest)
    return dest


def _edit_json(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_load_written_folder(tiny_folder: Path) -> None:
    model = load_model_folder(tiny_folder)
    assert model.folds == (0, 1)
    assert model.trainer_name == "nnUNetTrainer" and model.mirror_axes == (0, 1, 2)
    assert model.plan.configuration == "3d_fullres" and model.plan.patch_size == (16, 16, 16)
    assert model.dataset.n_heads == 4 and model.n_in == 1 and model.n_out == 4
    assert len(model.networks) == 2 and not model.networks[0].training
    w0 = model.networks[0].state_dict()["decoder.seg_layers.1.weight"]
    w1 = model.networks[1].state_dict()["decoder.seg_layers.1.weight"]
    assert not torch.equal(w0, w1)  # one seed per fold
    single = load_model_folder(tiny_folder, folds=1)
    assert single.folds == (1,) and torch.equal(
        single.networks[0].state_dict()["decoder.seg_layers.1.weight"], w1
    )
    with torch.no_grad():
        out = model.networks[0](torch.randn(1, 1, 16, 16, 16))
    assert out.shape == (1, 4, 16, 16, 16)


def test_fold_discovery_is_numeric_and_skips_fold_all(
    tiny_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    folder = random_model_folder(
        tmp_path / "Dataset999_F" / "m", **tiny_kwargs, folds=(10, 2, "all", 0)
    )
    (folder / "fold_3").mkdir()  # no checkpoint: ignored
    assert discover_folds(folder) == (0, 2, 10)
    assert load_model_folder(folder).folds == (0, 2, 10)
    assert load_model_folder(folder, folds=("all",)).folds == ("all",)


def test_load_nnunet_written_checkpoint_with_numpy_scalars(
    tmp_path: Path, tiny_folder: Path
) -> None:
    """A checkpoint laid out like nnUNetTrainer.save_checkpoint (numpy scalars in logging)."""
    folder = _copy(tiny_folder, tmp_path)
    path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(path, weights_only=False)
    ckpt["logging"] = {"mean_fg_dice": [np.float64(0.5)], "train_losses": [np.float64(-0.1)]}
    ckpt["_best_ema"] = np.float64(0.5)
    ckpt["init_args"]["unpack_dataset"] = True
    del ckpt["inference_allowed_mirroring_axes"]  # old checkpoints: treated as None
    torch.save(ckpt, path)
    model = load_model_folder(folder, folds=0)
    assert model.mirror_axes is None


def test_missing_parts(tmp_path: Path, tiny_folder: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match=r"Expected a model folder .* got nothing"):
        load_model_folder(tmp_path / "nope")
    folder = _copy(tiny_folder, tmp_path)
    with pytest.raises(WeightsNotFoundError, match=r"fold_7/checkpoint_final\.pth', got no such"):
        load_model_folder(folder, folds=(7,))
    with pytest.raises(ConfigError, match="Expected folds as integers or 'all'"):
        load_model_folder(folder, folds=("x",))
    shutil.rmtree(folder / "fold_0")
    shutil.rmtree(folder / "fold_1")
    with pytest.raises(WeightsNotFoundError, match=r"Expected fold_N/checkpoint_final\.pth"):
        load_model_folder(folder)
    (folder / "dataset.json").unlink()
    with pytest.raises(WeightsNotFoundError, match=r"Expected dataset.json in the model folder"):
        load_model_folder(folder)


def test_wrong_number_of_input_channels(tmp_path: Path, tiny_folder: Path) -> None:
    folder = _copy(tiny_folder, tmp_path)
    _edit_json(folder / "dataset.json", lambda d: d["channel_names"].update({"1": "PET"}))
    plans = folder / "plans.json"
    _edit_json(
        plans,
        lambda d: d["configurations"]["3d_fullres"].update(
            normalization_schemes=["CTNormalization", "ZScoreNormalization"],
            use_mask_for_norm=[False, False],
        ),
    )
    _edit_json(
        plans,
        lambda d: d["foreground_intensity_properties_per_channel"].update(
            {"1": d["foreground_intensity_properties_per_channel"]["0"]}
        ),
    )
    with pytest.raises(
        ModelError, match=r"Expected a checkpoint for 2 input channel\(s\).*got one for 1"
    ):
        load_model_folder(folder)
    _edit_json(
        plans,
        lambda d: d["configurations"]["3d_fullres"].update(
            normalization_schemes=["CTNormalization"], use_mask_for_norm=[False]
        ),
    )
    with pytest.raises(ModelError, match=r"Expected plans.json to normalise 2 channel"):
        load_model_folder(folder)


def test_plan_checkpoint_mismatch(tmp_path: Path, tiny_folder: Path) -> None:
    folder = _copy(tiny_folder, tmp_path)
    _edit_json(
        folder / "plans.json",
        lambda d: d["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"].update(
            features_per_stage=[4, 8, 32]
        ),
    )
    with pytest.raises(ModelError, match=r"does not match the PlainConvUNet .* mismatched key"):
        load_model_folder(folder)
    _edit_json(folder / "dataset.json", lambda d: d["labels"].update(extra=4))
    with pytest.raises(ModelError, match=r"with 5 output channels .*got 4"):
        load_model_folder(folder)


def test_missing_and_unexpected_keys_are_named(tmp_path: Path, tiny_folder: Path) -> None:
    folder = _copy(tiny_folder, tmp_path)
    path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(path, weights_only=False)
    weights = ckpt["network_weights"]
    del weights["decoder.transpconvs.0.bias"]
    weights["extra.weight"] = torch.zeros(1)
    torch.save(ckpt, path)
    with pytest.raises(
        ModelError,
        match=r"1 missing key\(s\) \(decoder\.transpconvs\.0\.bias\); "
        r"1 unexpected key\(s\) \(extra\.weight\)",
    ):
        load_model_folder(folder, folds=0)


def test_corrupt_and_unsafe_checkpoint_in_folder(tmp_path: Path, tiny_folder: Path) -> None:
    folder = _copy(tiny_folder, tmp_path)
    path = folder / "fold_1" / "checkpoint_final.pth"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match=r"fold_1.checkpoint_final\.pth' is not a readable"):
        load_model_folder(folder)

    class Sneaky:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, ("true",))

    ckpt = torch.load(folder / "fold_0" / "checkpoint_final.pth", weights_only=False)
    ckpt["logging"] = Sneaky()
    torch.save(ckpt, path)
    with pytest.raises(UnsafeCheckpointError, match="forbidden global"):
        load_model_folder(folder, folds=1)


def test_writer_completes_alias_keys_and_refuses_mismatch(
    tmp_path: Path, tiny_folder: Path
) -> None:
    model = load_model_folder(tiny_folder, folds=0)
    full = model.networks[0].state_dict()
    canonical = {
        k: v
        for k, v in full.items()
        if ".all_modules." not in k and not k.startswith("decoder.encoder.")
    }
    plans = json.loads((tiny_folder / "plans.json").read_text())
    dataset = json.loads((tiny_folder / "dataset.json").read_text())
    kwargs = {
        "plans": plans,
        "dataset_json": dataset,
        "trainer_name": "nnUNetTrainer",
        "configuration": "3d_fullres",
        "mirror_axes": None,
    }
    dest = write_model_folder(tmp_path / "D" / "m", state_dicts={0: canonical}, **kwargs)
    written = torch.load(dest / "fold_0" / "checkpoint_final.pth", weights_only=False)
    assert list(written["network_weights"]) == list(full)
    assert all(torch.equal(written["network_weights"][k], v) for k, v in full.items())
    assert (
        written["init_args"]["configuration"] == "3d_fullres" and written["init_args"]["fold"] == 0
    )
    with pytest.raises(ModelError, match="already exists"):
        write_model_folder(dest, state_dicts={0: full}, **kwargs)
    write_model_folder(dest, state_dicts={1: full}, overwrite=True, **kwargs)
    assert sorted(p.name for p in dest.iterdir()) == ["dataset.json", "fold_1", "plans.json"]
    broken = dict(full)
    del broken["decoder.seg_layers.0.weight"]
    with pytest.raises(ModelError, match=r"1 missing key\(s\) \(decoder\.seg_layers\.0\.weight"):
        write_model_folder(tmp_path / "D" / "x", state_dicts={0: broken}, **kwargs)
    assert not (tmp_path / "D" / "x").exists()
    assert [p.name for p in (tmp_path / "D").iterdir()] == ["m"]  # no temp dirs left


def test_random_model_folder_errors(tiny_kwargs: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="divisible by the total stride"):
        random_model_folder(tmp_path / "a", **{**tiny_kwargs, "patch_size": (16, 16, 10)})
    with pytest.raises(ConfigError, match="Expected 3 label names"):
        random_model_folder(tmp_path / "b", **tiny_kwargs, label_names=["a"])


def test_load_model_by_path_dataset_and_task(tiny_folder: Path, home: Path) -> None:
    (model,) = load_model(tiny_folder, folds=0)
    assert model.folder == tiny_folder
    target = home / "weights" / "Dataset999_Tiny" / tiny_folder.name
    shutil.copytree(tiny_folder, target)
    (by_id,) = load_model(999, folds=0)
    assert by_id.folder == target
    with pytest.raises(WeightsNotFoundError, match=r"totalseg weights download total-fast"):
        load_model("total-fast")


# ----- nnunetv2 as the oracle ---------------------------------------------------------------


def _nnunet_predictor(folder: Path, folds: tuple[int, ...]):  # type: ignore[no-untyped-def]
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(
        device=torch.device("cpu"),
        perform_everything_on_device=False,
        verbose=False,
        verbose_preprocessing=False,
    )
    predictor.initialize_from_trained_model_folder(
        str(folder), use_folds=folds, checkpoint_name="checkpoint_final.pth"
    )
    return predictor


@pytest.mark.parametrize("architecture", ["PlainConvUNet", "ResidualEncoderUNet"])
def test_nnunetv2_loads_our_folder(
    tiny_kwargs: dict[str, Any],
    tmp_path: Path,
    nnunet_env: None,
    architecture: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = random_model_folder(
        tmp_path / "Dataset998_R" / "m",
        **tiny_kwargs,
        architecture=architecture,
        n_conv_per_stage=(1, 2, 2),
        trainer_name="nnUNetTrainer",
        mirror_axes=(0, 1, 2),
        seed=3,
    )
    predictor = _nnunet_predictor(folder, (0,))
    capsys.readouterr()
    assert predictor.allowed_mirroring_axes == (0, 1, 2)
    predictor.network.load_state_dict(predictor.list_of_parameters[0])
    ours = load_model_folder(folder, folds=0).networks[0]
    theirs_sd, ours_sd = predictor.network.state_dict(), ours.state_dict()
    assert list(theirs_sd) == list(ours_sd)
    assert all(torch.equal(theirs_sd[k], v) for k, v in ours_sd.items())
    predictor.network.eval()
    x = torch.randn(1, 1, 16, 16, 32)
    with torch.no_grad():
        assert torch.equal(predictor.network(x), ours(x))


def test_nnunetv2_loads_no_mirroring_trainer_folder(
    tiny_kwargs: dict[str, Any], tmp_path: Path, nnunet_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TotalSegmentator's trainer. nnunetv2's trainer search imports every trainer module, and
    its primus module needs torchvision, which is broken in this venv (CUDA wheel on CPU torch),
    so the lookup is pointed at the class directly; the loading code path is unchanged."""
    import nnunetv2.inference.predict_from_raw_data as pfr
    from nnunetv2.training.nnUNetTrainer.variants.data_augmentation import (
        nnUNetTrainerNoMirroring as module,
    )

    monkeypatch.setattr(
        pfr, "recursive_find_trainer_class_by_name", lambda name: module.nnUNetTrainerNoMirroring
    )
    folder = random_model_folder(tmp_path / "Dataset997_N" / "m", **tiny_kwargs)
    predictor = _nnunet_predictor(folder, (0,))
    assert predictor.allowed_mirroring_axes is None
    ours = load_model_folder(folder)
    assert ours.mirror_axes is None and ours.trainer_name == "nnUNetTrainerNoMirroring"
    weights = predictor.list_of_parameters[0]
    assert all(torch.equal(weights[k], v) for k, v in ours.networks[0].state_dict().items())


def test_random_init_matches_nnunet_get_network_from_plans(
    nnunet_env: None, tiny_folder: Path
) -> None:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    model = load_model_folder(tiny_folder, folds=0)
    arch = json.loads((tiny_folder / "plans.json").read_text())["configurations"]["3d_fullres"][
        "architecture"
    ]
    torch.manual_seed(5)
    theirs = get_network_from_plans(
        arch["network_class_name"],
        arch["arch_kwargs"],
        arch["_kw_requires_import"],
        1,
        4,
        deep_supervision=False,
    )
    torch.manual_seed(5)
    ours = build_network(model.plan.architecture, 1, 4)
    initialize_he(ours)
    assert all(torch.equal(theirs.state_dict()[k], v) for k, v in ours.state_dict().items())
