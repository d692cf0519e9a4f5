"""nnU-Net 1 plans (the dict of `plans.pkl` / the checkpoint's `.model.pkl`) -> typed views.

`read_v1_plans(plans, stage)` gives a `Plan` (the same type as for nnU-Net 2 folders, in nnU-Net
array order after `transpose_forward`) whose fields carry the v1 semantics:
- `normalization_schemes` keep v1's names ('CT', 'CT2', 'nonCT', 'noNorm');
- `intensity_properties` come from `dataset_properties['intensityproperties']` (`sd` -> std);
- `resampling_data` is GenericPreprocessor's (order 3, order_z 0, separate z automatic at
  anisotropy > 3), `resampling_probabilities` the export's (order 1, order_z 0, automatic, or the
  plans' `segmentation_export_params`);
- `architecture` describes Generic_UNet (see `models.v1.network`).
The label names of a v1 folder come from `v1_dataset_info`: the task registry's v1 part map for
Tasks 251-255, the v1 class map for Task 256, else `label_N`.
Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from totalseg.errors import ConfigError
from totalseg.models.arch import ArchitectureSpec
from totalseg.models.plan import DatasetInfo, IntensityProperties, Plan, ResamplingSpec

__all__ = ["V1_SCHEMES", "read_v1_plans", "v1_dataset_info", "v1_stage"]

V1_SCHEMES = ("CT", "CT2", "nonCT", "noNorm")
_MAX_FEATURES_3D = 320
_PREPROCESSORS = (None, "GenericPreprocessor")


def _get(plans: Mapping[Any, Any], key: str, where: str) -> Any:
    if key not in plans:
        raise ConfigError(f"Expected key {key!r} in the nnU-Net 1 plans ({where}), got none.")
    return plans[key]


def _per_channel(value: Any, n: int, key: str, where: str) -> list[Any]:
    if not isinstance(value, Mapping) or any(c not in value for c in range(n)):
        raise ConfigError(
            f"Expected {key!r} as a dict with entries 0..{n - 1} ({where}), got {value!r}."
        )
    return [value[c] for c in range(n)]


def v1_stage(plans: Mapping[Any, Any], stage: int | None, where: str) -> int:
    """The stage nnU-Net 1's trainer uses: the given one, else the only one of the plans."""
    stages = _get(plans, "plans_per_stage", where)
    if not isinstance(stages, Mapping) or not stages:
        raise ConfigError(f"Expected 'plans_per_stage' as a non-empty dict ({where}).")
    if stage is None:
        if len(stages) != 1:
            raise ConfigError(
                f"Expected one stage in 'plans_per_stage' when the checkpoint names none, got "
                f"{sorted(stages)} ({where})."
            )
        return int(next(iter(stages)))
    if stage not in stages:
        raise ConfigError(f"Expected stage {stage} in 'plans_per_stage', got {sorted(stages)}.")
    return int(stage)


def _intensity(raw: Any, where: str) -> IntensityProperties:
    names = {"mean": "mean", "std": "sd", "median": "median", "min": "mn", "max": "mx"}
    names |= {"percentile_00_5": "percentile_00_5", "percentile_99_5": "percentile_99_5"}
    if not isinstance(raw, Mapping) or any(v not in raw for v in names.values()):
        raise ConfigError(
            f"Expected intensity properties {sorted(names.values())} ({where}), got {raw!r}."
        )
    return IntensityProperties(**{k: float(raw[v]) for k, v in names.items()})


def _architecture(stage_plans: Mapping[Any, Any], plans: Mapping[Any, Any], where: str) -> Any:
    pools = [tuple(int(v) for v in p) for p in _get(stage_plans, "pool_op_kernel_sizes", where)]
    kernels = [tuple(int(v) for v in k) for k in _get(stage_plans, "conv_kernel_sizes", where)]
    n_conv = int(plans.get("conv_per_stage", 2))
    base = int(_get(plans, "base_num_features", where))
    if len(kernels) != len(pools) + 1 or n_conv < 2 or any(len(k) != 3 for k in kernels):
        raise ConfigError(
            f"Expected 3D conv_kernel_sizes with one entry more than pool_op_kernel_sizes and "
            f"conv_per_stage >= 2, got {len(kernels)} / {len(pools)} entries and {n_conv} "
            f"({where})."
        )
    n = len(kernels)
    return ArchitectureSpec(
        network_class_name="PlainConvUNet",
        n_stages=n,
        features_per_stage=tuple(min(base * 2**i, _MAX_FEATURES_3D) for i in range(n)),
        kernel_sizes=tuple(kernels),
        strides=((1, 1, 1), *pools),
        n_conv_per_stage=(n_conv,) * n,
        n_conv_per_stage_decoder=(n_conv,) * (n - 1),
        conv_bias=True,
        nonlin_negative_slope=0.01,
    )


def _export_resampling(plans: Mapping[Any, Any]) -> ResamplingSpec:
    params = plans.get("segmentation_export_params") or {}
    kwargs = {
        "is_seg": False,
        "order": int(params.get("interpolation_order", 1)),
        "order_z": int(params.get("interpolation_order_z", 0)),
        "force_separate_z": params.get("force_separate_z"),
    }
    return ResamplingSpec("resample_data_or_seg", MappingProxyType(kwargs))


def read_v1_plans(plans: Mapping[Any, Any], stage: int, *, where: str = "plans.pkl") -> Plan:
    """One stage of nnU-Net 1 plans as a `Plan` with v1 semantics (see the module doc)."""
    stage_plans = plans["plans_per_stage"][stage]
    patch = tuple(int(p) for p in _get(stage_plans, "patch_size", where))
    if len(patch) != 3:
        raise ConfigError(
            f"Expected a 3D (3d_fullres) nnU-Net 1 model, got patch size {patch} ({where}); 2D "
            "v1 models are not supported."
        )
    preprocessor = plans.get("preprocessor_name")
    if preprocessor not in _PREPROCESSORS:
        raise ConfigError(
            f"Expected nnU-Net 1's GenericPreprocessor, got {preprocessor!r} ({where}); this v1 "
            "model needs a preprocessing totalseg does not reproduce."
        )
    n_in = int(_get(plans, "num_modalities", where))
    schemes = tuple(str(s) for s in _per_channel(
        _get(plans, "normalization_schemes", where), n_in, "normalization_schemes", where
    ))  # fmt: skip
    unknown = [s for s in schemes if s not in V1_SCHEMES]
    if unknown:
        raise ConfigError(
            f"Expected v1 normalisation schemes among {V1_SCHEMES}, got {unknown} ({where})."
        )
    use_mask = tuple(bool(m) for m in _per_channel(
        plans.get("use_mask_for_norm", dict.fromkeys(range(n_in), False)), n_in,
        "use_mask_for_norm", where,
    ))  # fmt: skip
    if any(use_mask):
        raise ConfigError(
            f"Expected use_mask_for_norm False for every channel, got {use_mask} ({where}); "
            "v1 models normalised inside the nonzero mask are not supported."
        )
    intensity: tuple[IntensityProperties, ...] = ()
    if any(s in ("CT", "CT2") for s in schemes):
        props = _get(_get(plans, "dataset_properties", where), "intensityproperties", where)
        intensity = tuple(
            _intensity(p, where) for p in _per_channel(props, n_in, "intensityproperties", where)
        )
    identity = [0, 1, 2]
    forward = [int(v) for v in plans.get("transpose_forward") or identity]
    backward = [int(v) for v in plans.get("transpose_backward") or identity]
    if sorted(forward) != identity or [forward[i] for i in backward] != identity:
        raise ConfigError(f"Expected inverse transposes, got {forward} / {backward} ({where}).")
    data_kwargs = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    return Plan(
        configuration="3d_fullres",
        dataset_name=str(plans.get("dataset_properties", {}).get("dataset_name", "")),
        plans_name=str(plans.get("plans_name", "nnUNetPlansv2.1")),
        patch_size=patch,
        spacing_mm=tuple(float(s) for s in _get(stage_plans, "current_spacing", where)),
        transpose_forward=tuple(forward),
        transpose_backward=tuple(backward),
        normalization_schemes=schemes,
        use_mask_for_norm=use_mask,
        intensity_properties=intensity,
        resampling_data=ResamplingSpec("resample_data_or_seg", MappingProxyType(data_kwargs)),
        resampling_seg=ResamplingSpec("resample_data_or_seg", MappingProxyType({"order": 1})),
        resampling_probabilities=_export_resampling(plans),
        architecture=_architecture(stage_plans, plans, where),
        image_reader_writer="SimpleITKIO",
        preprocessor_name="GenericPreprocessor",
        label_manager="LabelManager",
        previous_stage=None,
        batch_size=int(stage_plans.get("batch_size", 2)),
        batch_dice=None,
    )


def v1_dataset_info(plans: Mapping[Any, Any], task_id: int | None, *, where: str) -> DatasetInfo:
    """Labels and channels of a v1 model: registry names for Tasks 251-256, else `label_N`."""
    from totalseg.anatomy import class_map, part_maps

    n_classes = int(_get(plans, "num_classes", where))
    names: Mapping[int, str] = {}
    if task_id in part_maps("v1"):
        names = part_maps("v1")[task_id]
    elif task_id == 256:
        names = class_map("v1")
    if sorted(names) != list(range(1, n_classes + 1)):
        names = {i: f"label_{i}" for i in range(1, n_classes + 1)}
    labels = {"background": 0, **{names[i]: i for i in range(1, n_classes + 1)}}
    modalities = plans.get("modalities") or {}
    n_in = int(_get(plans, "num_modalities", where))
    channels = tuple(str(modalities.get(c, f"channel_{c}")) for c in range(n_in))
    return DatasetInfo(
        name=None,
        labels=MappingProxyType(labels),
        channel_names=channels,
        file_ending=".nii.gz",
        ignore_label=None,
    )
