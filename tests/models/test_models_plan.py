from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest

from totalseg.errors import ConfigError
from totalseg.models.arch import ArchitectureSpec, parse_architecture, to_plans_architecture
from totalseg.models.plan import read_dataset_json, read_plan, resolve_configuration
from totalseg.models.writer import DEFAULT_CT_INTENSITY, make_dataset_json, make_plans


def _spec(cls: str = "PlainConvUNet") -> ArchitectureSpec:
    plain = cls == "PlainConvUNet"
    return ArchitectureSpec(
        network_class_name=cls,  # type: ignore[arg-type]
        n_stages=3,
        features_per_stage=(4, 8, 16),
        kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)),
        strides=((1, 1, 1), (1, 2, 2), (2, 2, 2)),
        n_conv_per_stage_decoder=(2, 2) if plain else (1, 1),
        n_conv_per_stage=(2, 2, 2) if plain else None,
        n_blocks_per_stage=None if plain else (1, 2, 2),
    )


def _plans(cls: str = "PlainConvUNet") -> dict[str, Any]:
    return make_plans(architecture=_spec(cls), patch_size=(8, 16, 24), spacing_mm=(3.0, 0.8, 0.7))


def test_read_plan_round_trip() -> None:
    plan = read_plan(_plans(), "3d_fullres")
    assert plan.patch_size == (8, 16, 24)
    assert plan.spacing_mm == plan.spacing == (3.0, 0.8, 0.7)
    assert plan.transpose_forward == plan.transpose_backward == (0, 1, 2)
    assert plan.normalization_schemes == ("CTNormalization",)
    assert plan.use_mask_for_norm == (False,)
    assert plan.intensity_properties == (DEFAULT_CT_INTENSITY,)
    assert plan.resampling_data.fn_name == "resample_data_or_seg_to_shape"
    assert (plan.resampling_data.order, plan.resampling_seg.order) == (3, 1)
    assert plan.resampling_seg.is_seg and plan.resampling_data.force_separate_z is None
    assert plan.architecture == _spec()
    assert plan.image_reader_writer == "SimpleITKIO" and plan.previous_stage is None
    for cls in ("PlainConvUNet", "ResidualEncoderUNet"):
        spec = _spec(cls)
        assert parse_architecture({"architecture": to_plans_architecture(spec)}, where="x") == spec


def test_inheritance_matches_nnunet(nnunet_env: None) -> None:
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = _plans()
    plans["configurations"]["child"] = {"inherits_from": "3d_fullres", "patch_size": [8, 8, 8]}
    plans["configurations"]["grandchild"] = {"inherits_from": "child", "batch_size": 7}
    ours = resolve_configuration(plans, "grandchild")
    theirs = PlansManager(copy.deepcopy(plans))._internal_resolve_configuration_inheritance(
        "grandchild"
    )
    theirs.pop("inherits_from", None)
    assert ours == theirs
    plan = read_plan(plans, "grandchild")
    assert (
        plan.patch_size == (8, 8, 8) and plan.batch_size == 7 and plan.configuration == "grandchild"
    )


def test_inheritance_cycle_and_unknown_configuration() -> None:
    plans = _plans()
    plans["configurations"]["a"] = {"inherits_from": "b"}
    plans["configurations"]["b"] = {"inherits_from": "a"}
    with pytest.raises(ConfigError, match=r"inheritance cycle in plans.json: a -> b -> a"):
        read_plan(plans, "a")
    with pytest.raises(
        ConfigError, match=r"Unknown configuration '2d'; plans.json has: 3d_fullres"
    ):
        read_plan(plans, "2d")


def _legacy(config: dict[str, Any], cls: str) -> dict[str, Any]:
    arch = config.pop("architecture")["arch_kwargs"]
    config.update(
        UNet_class_name=cls,
        UNet_base_num_features=4,
        unet_max_num_features=10,
        n_conv_per_stage_encoder=arch.get("n_conv_per_stage", arch.get("n_blocks_per_stage")),
        n_conv_per_stage_decoder=arch["n_conv_per_stage_decoder"],
        pool_op_kernel_sizes=arch["strides"],
        conv_kernel_sizes=arch["kernel_sizes"],
        num_pool_per_axis=[1, 2, 2],
    )
    return config


@pytest.mark.parametrize("cls", ["PlainConvUNet", "ResidualEncoderUNet"])
def test_legacy_plans_convert_like_nnunet(nnunet_env: None, cls: str) -> None:
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

    plans = _plans(cls)
    plans["configurations"]["3d_fullres"] = _legacy(plans["configurations"]["3d_fullres"], cls)
    ours = read_plan(plans, "3d_fullres").architecture
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = ConfigurationManager(copy.deepcopy(plans["configurations"]["3d_fullres"]))
    assert ours == parse_architecture(converted.configuration, where="nnunet")
    assert ours.features_per_stage == (4, 8, 10)  # min(base * 2**i, max)


def test_plan_errors() -> None:
    plans = _plans()
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    bad = copy.deepcopy(plans)
    bad["configurations"]["3d_fullres"]["architecture"]["network_class_name"] = "my.Net"
    with pytest.raises(ConfigError, match=r"Unsupported network class 'my.Net'"):
        read_plan(bad, "3d_fullres")
    bad = copy.deepcopy(plans)
    bad["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["squeeze"] = True
    with pytest.raises(ConfigError, match=r"Unsupported PlainConvUNet arch_kwargs \['squeeze'\]"):
        read_plan(bad, "3d_fullres")
    bad = copy.deepcopy(plans)
    bad["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["strides"] = arch[
        "arch_kwargs"
    ]["strides"][:2]
    with pytest.raises(ConfigError, match="strides has 2 entries"):
        read_plan(bad, "3d_fullres")
    bad = copy.deepcopy(plans)
    del bad["foreground_intensity_properties_per_channel"]
    with pytest.raises(ConfigError, match="CTNormalization needs them"):
        read_plan(bad, "3d_fullres")
    bad = copy.deepcopy(plans)
    bad["transpose_backward"] = [0, 2, 2]
    with pytest.raises(ConfigError, match="inverse permutations"):
        read_plan(bad, "3d_fullres")
    with pytest.raises(ConfigError, match="Expected a 'configurations' dict"):
        read_plan({}, "3d_fullres")


def test_legacy_intensity_key_and_transpose() -> None:
    plans = _plans()
    plans["foreground_intensity_properties_by_modality"] = plans.pop(
        "foreground_intensity_properties_per_channel"
    )
    plans["transpose_forward"], plans["transpose_backward"] = [2, 0, 1], [1, 2, 0]
    plan = read_plan(plans, "3d_fullres")
    assert plan.intensity_properties == (DEFAULT_CT_INTENSITY,)
    assert plan.transpose_forward == (2, 0, 1)


def test_dataset_json() -> None:
    info = read_dataset_json(make_dataset_json(["liver", "spleen"], channel_names=("CT",)))
    assert info.n_heads == 3 and info.n_channels == 1
    assert info.class_names == {1: "liver", 2: "spleen"}
    legacy = {"modality": {"1": "T2", "0": "T1"}, "labels": {"background": 0, "a": 1, "ignore": 2}}
    info = read_dataset_json(legacy)
    assert info.channel_names == ("T1", "T2") and info.n_heads == 2 and info.ignore_label == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"labels": {"background": 0, "a": [1, 2]}, "channel_names": {"0": "CT"}}, "Region-based"),
        ({"labels": {"background": 0, "a": 2}, "channel_names": {"0": "CT"}}, "0..N-1"),
        ({"labels": {"a": 1}, "channel_names": {"0": "CT"}}, "'background': 0"),
        ({"labels": {"background": 0}, "channel_names": {"1": "CT"}}, "channel keys"),
        ({"labels": {}, "channel_names": {"0": "CT"}}, "non-empty 'labels'"),
        ({"labels": {"background": 0, "a": "x"}, "channel_names": {"0": "CT"}}, "integer label"),
    ],
)
def test_dataset_json_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_dataset_json(raw)
