"""Writing nnU-Net v2 model folders (exports, converted weights, random-init test models).

The layout and checkpoint keys are exactly what `nnUNetTrainer.save_checkpoint` writes and
`nnUNetPredictor.initialize_from_trained_model_folder` reads, so nnunetv2 can load the result.
Folders are written atomically: into a temporary sibling directory, then renamed into place.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from totalseg.errors import ConfigError, ModelError
from totalseg.models.arch import ArchitectureSpec, to_plans_architecture
from totalseg.models.folder import n_input_channels, state_dict_mismatch
from totalseg.models.plan import IntensityProperties, read_dataset_json, read_plan
from totalseg.models.unet import build_network, initialize_he
from totalseg.models.weights import replace_dir

#: CT-like foreground intensity statistics for random-init test models.
DEFAULT_CT_INTENSITY = IntensityProperties(
    mean=60.0,
    std=200.0,
    median=50.0,
    min=-1024.0,
    max=3071.0,
    percentile_00_5=-1000.0,
    percentile_99_5=1500.0,
)
_EMPTY_LOGGING: dict[str, list[Any]] = {
    k: []
    for k in (
        "mean_fg_dice",
        "ema_fg_dice",
        "dice_per_class_or_region",
        "train_losses",
        "val_losses",
        "lrs",
        "epoch_start_timestamps",
        "epoch_end_timestamps",
    )
}


def _resampling_entries() -> dict[str, Any]:
    fn = "resample_data_or_seg_to_shape"
    base = {"order_z": 0, "force_separate_z": None}
    return {
        "resampling_fn_data": fn,
        "resampling_fn_seg": fn,
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, **base},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, **base},
        "resampling_fn_probabilities": fn,
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, **base},
    }


def make_plans(
    *,
    architecture: ArchitectureSpec,
    patch_size: Sequence[int],
    spacing_mm: Sequence[float],
    normalization: str | Sequence[str] = "CTNormalization",
    intensity: IntensityProperties | Sequence[IntensityProperties] = DEFAULT_CT_INTENSITY,
    configuration: str = "3d_fullres",
    dataset_name: str = "Dataset999_RandomInit",
    image_reader_writer: str = "SimpleITKIO",
    batch_size: int = 2,
) -> dict[str, Any]:
    """A plans.json dict like nnU-Net's planner writes (one configuration; array axis order)."""
    schemes = [normalization] if isinstance(normalization, str) else list(normalization)
    props = [intensity] if isinstance(intensity, IntensityProperties) else list(intensity)
    if len(props) == 1 and len(schemes) > 1:
        props = props * len(schemes)
    n_dims = len(patch_size)
    if len(spacing_mm) != n_dims or n_dims != architecture.conv_dim:
        raise ConfigError(
            f"Expected patch_size {tuple(patch_size)} and spacing_mm {tuple(spacing_mm)} with "
            f"{architecture.conv_dim} axes each (the architecture's conv_dim)."
        )
    stride = architecture.total_stride
    if any(p % s for p, s in zip(patch_size, stride, strict=True)):
        raise ConfigError(
            f"Expected patch_size {tuple(patch_size)} divisible by the total stride {stride}; "
            "choose a multiple of it."
        )
    config = {
        "data_identifier": f"nnUNetPlans_{configuration}",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": batch_size,
        "patch_size": [int(p) for p in patch_size],
        "median_image_size_in_voxels": [float(p) for p in patch_size],
        "spacing": [float(s) for s in spacing_mm],
        "normalization_schemes": schemes,
        "use_mask_for_norm": [False] * len(schemes),
        **_resampling_entries(),
        "architecture": to_plans_architecture(architecture),
        "batch_dice": True,
    }
    return {
        "dataset_name": dataset_name,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [float(s) for s in spacing_mm],
        "original_median_shape_after_transp": [int(p) for p in patch_size],
        "image_reader_writer": image_reader_writer,
        "transpose_forward": list(range(n_dims)),
        "transpose_backward": list(range(n_dims)),
        "configurations": {configuration: config},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            str(c): p.to_dict() for c, p in enumerate(props)
        },
    }


def make_dataset_json(
    label_names: Sequence[str], *, channel_names: Sequence[str] = ("CT",), name: str | None = None
) -> dict[str, Any]:
    """A dataset.json dict: background 0, then `label_names` as 1..N."""
    labels = {"background": 0, **{n: i + 1 for i, n in enumerate(label_names)}}
    if len(labels) != len(label_names) + 1:
        raise ConfigError(f"Expected distinct label names without 'background', got {label_names}.")
    out: dict[str, Any] = {
        "channel_names": {str(i): c for i, c in enumerate(channel_names)},
        "labels": labels,
        "numTraining": 0,
        "file_ending": ".nii.gz",
    }
    if name is not None:
        out["name"] = name
    return out


def _complete_state_dict(
    network: torch.nn.Module, weights: Mapping[str, torch.Tensor], where: str
) -> dict[str, torch.Tensor]:
    """`weights` loaded into `network`; alias keys may be absent (they share storage)."""
    own = network.state_dict(keep_vars=True)
    groups: dict[int, list[str]] = {}
    for key, tensor in own.items():
        groups.setdefault(id(tensor), []).append(key)
    covered = {k for keys in groups.values() if any(x in weights for x in keys) for k in keys}
    present = {k: v for k, v in weights.items() if k in own}
    problem = state_dict_mismatch(
        {k: own[k] for k in own if k not in covered or k in weights}, weights
    )
    if problem:
        raise ModelError(f"State dict does not fit the plan's network ({where}): {problem}.")
    network.load_state_dict(present, strict=False)
    return {k: v.detach().cpu() for k, v in network.state_dict().items()}


def write_model_folder(
    dest: str | Path,
    *,
    plans: Mapping[str, Any],
    dataset_json: Mapping[str, Any],
    state_dicts: Mapping[int | str, Mapping[str, torch.Tensor]],
    trainer_name: str,
    configuration: str,
    mirror_axes: tuple[int, ...] | None,
    overwrite: bool = False,
    current_epoch: int = 0,
    store_fp16: bool = False,
) -> Path:
    """Write an nnU-Net v2 model folder with one `fold_X/checkpoint_final.pth` per entry.

    Each state dict is checked against the network the plan describes (all keys but nnU-Net's
    alias keys required, shapes equal) and written with every alias key, as nnU-Net loads
    strictly. Returns `dest`. An existing `dest` is an error unless `overwrite`.
    `store_fp16` stores floating-point weights as float16 (half the file; loaders upcast, as
    totalseg's does, and nnU-Net's `load_state_dict` copies into its float32 parameters).
    """
    dest = Path(dest)
    plan = read_plan(plans, configuration)
    dataset = read_dataset_json(dataset_json)
    if not state_dicts:
        raise ConfigError("Expected at least one fold's state dict, got none.")
    if dest.exists() and not overwrite:
        raise ModelError(f"'{dest}' already exists; pass overwrite=True or choose another folder.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    axes = None if mirror_axes is None else tuple(int(a) for a in mirror_axes)
    try:
        tmp.mkdir()
        (tmp / "plans.json").write_text(json.dumps(plans, indent=2), encoding="utf-8")
        (tmp / "dataset.json").write_text(json.dumps(dataset_json, indent=2), encoding="utf-8")
        for fold, weights in state_dicts.items():
            fold_id: int | str = "all" if fold == "all" else int(fold)
            network = build_network(
                plan.architecture, n_input_channels(plan, dataset), dataset.n_heads
            )
            full = _complete_state_dict(network, weights, f"fold {fold_id}")
            if store_fp16:
                full = _as_float16(full)
            checkpoint = {
                "network_weights": full,
                "optimizer_state": None,
                "grad_scaler_state": None,
                "logging": {k: list(v) for k, v in _EMPTY_LOGGING.items()},
                "_best_ema": None,
                "current_epoch": current_epoch,
                "init_args": {
                    "plans": dict(plans),
                    "configuration": configuration,
                    "fold": fold_id,
                    "dataset_json": dict(dataset_json),
                    "device": torch.device("cpu"),
                },
                "trainer_name": trainer_name,
                "inference_allowed_mirroring_axes": axes,
            }
            (tmp / f"fold_{fold_id}").mkdir()
            torch.save(checkpoint, tmp / f"fold_{fold_id}" / "checkpoint_final.pth")
        replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _as_float16(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors as float16; alias keys keep sharing one tensor (so the file halves)."""
    done: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        if not tensor.is_floating_point():
            out[key] = tensor
            continue
        alias = (tensor.data_ptr(), tuple(tensor.shape))
        if alias not in done:
            done[alias] = tensor.to(torch.float16)
        out[key] = done[alias]
    return out


def _random_spec(
    architecture: str,
    features_per_stage: Sequence[int],
    strides: Sequence[Sequence[int]],
    kernel_sizes: Sequence[Sequence[int]],
    n_conv_per_stage: int | Sequence[int],
    conv_dim: int,
) -> ArchitectureSpec:
    n = len(features_per_stage)
    counts = [n_conv_per_stage] * n if isinstance(n_conv_per_stage, int) else list(n_conv_per_stage)
    plain = architecture == "PlainConvUNet"
    return ArchitectureSpec(
        network_class_name=architecture,  # type: ignore[arg-type]
        n_stages=n,
        features_per_stage=tuple(int(f) for f in features_per_stage),
        kernel_sizes=tuple(tuple(int(k) for k in ks) for ks in kernel_sizes),
        strides=tuple(tuple(int(s) for s in st) for st in strides),
        n_conv_per_stage_decoder=tuple(counts[: n - 1]) if plain else (1,) * (n - 1),
        n_conv_per_stage=tuple(counts) if plain else None,
        n_blocks_per_stage=None if plain else tuple(counts),
        conv_dim=conv_dim,
    )


def random_model_folder(
    dest: str | Path,
    *,
    n_classes: int,
    patch_size: Sequence[int],
    spacing_mm: float | Sequence[float],
    features_per_stage: Sequence[int],
    strides: Sequence[Sequence[int]],
    kernel_sizes: Sequence[Sequence[int]],
    n_conv_per_stage: int | Sequence[int] = 2,
    architecture: str = "PlainConvUNet",
    normalization: str = "CTNormalization",
    intensity: IntensityProperties = DEFAULT_CT_INTENSITY,
    seed: int = 0,
    label_names: Sequence[str] | None = None,
    n_channels: int = 1,
    folds: Sequence[int | str] = (0,),
    trainer_name: str = "nnUNetTrainerNoMirroring",
    mirror_axes: tuple[int, ...] | None = None,
    configuration: str = "3d_fullres",
    image_reader_writer: str = "SimpleITKIO",
    dataset_name: str = "Dataset999_RandomInit",
    overwrite: bool = False,
) -> Path:
    """A complete model folder with He-initialised random weights (nnU-Net's init), per fold.

    `n_classes` counts foreground classes (labels 1..n_classes; the network has n_classes + 1
    outputs). Axis lists are in nnU-Net array order. `n_conv_per_stage` is the number of blocks
    per stage for ResidualEncoderUNet (its decoder then has 1 conv per stage, as nnU-Net plans).
    """
    default_names = [f"class_{i}" for i in range(1, n_classes + 1)]
    names = list(label_names) if label_names is not None else default_names
    if len(names) != n_classes:
        raise ConfigError(f"Expected {n_classes} label names, got {len(names)}: {names}.")
    spec = _random_spec(
        architecture, features_per_stage, strides, kernel_sizes, n_conv_per_stage, len(patch_size)
    )
    if isinstance(spacing_mm, (int, float)):
        spacing_mm = [float(spacing_mm)] * len(patch_size)
    plans = make_plans(
        architecture=spec,
        patch_size=patch_size,
        spacing_mm=spacing_mm,
        normalization=[normalization] * n_channels,
        intensity=[intensity] * n_channels,
        configuration=configuration,
        dataset_name=dataset_name,
        image_reader_writer=image_reader_writer,
    )
    channels = ["CT"] if n_channels == 1 else [f"channel_{c}" for c in range(n_channels)]
    dataset_json = make_dataset_json(names, channel_names=channels, name=dataset_name)
    state_dicts = {}
    for i, fold in enumerate(folds):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + i)
            network = build_network(spec, n_channels, n_classes + 1)
            initialize_he(network)
        state_dicts[fold] = network.state_dict()
    return write_model_folder(
        dest,
        plans=plans,
        dataset_json=dataset_json,
        state_dicts=state_dicts,
        trainer_name=trainer_name,
        configuration=configuration,
        mirror_axes=mirror_axes,
        overwrite=overwrite,
    )
