"""Planning: target spacing, network topology, patch and batch size, CT normalisation.

The result is written as nnU-Net v2 ``plans.json`` (one configuration, ``3d_fullres``) and
``dataset.json``, readable by nnunetv2's ``PlansManager`` and by `totalseg.models.plan`.

Axis order: everything per-axis here (spacing, shapes, patch, strides) is **nnU-Net array
order**, i.e. the canonical RAS array transposed to (k, j, i) -- exactly what nnunetv2's
``NibabelIOWithReorient`` reader produces, which the written plans name as their reader.

Topology follows nnU-Net's ``get_pool_and_conv_props``: pool an axis while its feature map stays
>= 2 * 4 voxels and its spacing is within 2x of the finest; 3x3x3 kernels once an axis' spacing is
within 2x of the finest (else 1); a stage cap (`max_stages`). The patch starts at 256^3 voxels in
the aspect ratio of the spacing, clipped to the median image shape, and shrinks along the axis
most oversized relative to the median shape until the estimated training memory of a batch of 2
fits the budget (`estimate_training_memory_bytes`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.errors import ConfigError
from totalseg.models.arch import ArchitectureSpec, to_plans_architecture
from totalseg.models.plan import IntensityProperties, read_dataset_json, read_plan
from totalseg.training.cache import CachedCase
from totalseg.training.convert import nnunet_dataset_json

__all__ = [
    "CONFIGURATION",
    "TrainingPlan",
    "estimate_training_memory_bytes",
    "network_topology",
    "plan_training",
    "read_training_plan",
    "write_training_plan",
]

CONFIGURATION = "3d_fullres"
MIN_EDGE = 4  # smallest feature-map edge in the bottleneck (nnU-Net's featuremap_min_edge_length)
# Memory model constants. Calibrated on CPU: the measured peak RSS of one SGD step (forward,
# deep-supervision loss, backward, step) was within -4%..+15% of the estimate for 64^3-128^3
# patches, 8-32 base features and 25-105 classes (fp32, batch 2).
BYTES_PER_ELEMENT = {"cpu": 4.0, "cuda": 3.0}  # fp32 on CPU; mixed fp16/fp32 on CUDA
OVERHEAD = 1.05  # autograd temporaries and gradient buffers on top of stored activations
BASELINE_BYTES = {"cpu": 0.4e9, "cuda": 0.8e9}  # interpreter + torch (+ CUDA context)


@dataclass(frozen=True)
class TrainingPlan:
    """A complete plan: classes, grid, network, batch, normalisation (array order)."""

    dataset_name: str
    classes: Mapping[int, str]
    spacing: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    batch_size: int
    batch_dice: bool
    architecture: ArchitectureSpec
    intensity: IntensityProperties
    median_shape: tuple[int, int, int]
    original_median_spacing: tuple[float, float, float]
    estimated_memory_gb: float

    @property
    def n_classes(self) -> int:
        """Output channels including background."""
        return len(self.classes) + 1

    def plans_json(self) -> dict[str, Any]:
        config = {
            "data_identifier": f"nnUNetPlans_{CONFIGURATION}",
            "preprocessor_name": "DefaultPreprocessor",
            "batch_size": self.batch_size,
            "patch_size": list(self.patch_size),
            "median_image_size_in_voxels": list(self.median_shape),
            "spacing": list(self.spacing),
            "normalization_schemes": ["CTNormalization"],
            "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": _resampling_kwargs(False, 3),
            "resampling_fn_seg_kwargs": _resampling_kwargs(True, 1),
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": _resampling_kwargs(False, 1),
            "architecture": to_plans_architecture(self.architecture),
            "batch_dice": self.batch_dice,
        }
        return {
            "dataset_name": self.dataset_name,
            "plans_name": "nnUNetPlans",
            "original_median_spacing_after_transp": list(self.original_median_spacing),
            "original_median_shape_after_transp": list(self.median_shape),
            "image_reader_writer": "NibabelIOWithReorient",
            "transpose_forward": [0, 1, 2],
            "transpose_backward": [0, 1, 2],
            "configurations": {CONFIGURATION: config},
            "experiment_planner_used": "totalseg.training.planning",
            "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {"0": self.intensity.to_dict()},
        }

    def dataset_json(self, *, n_training: int = 0) -> dict[str, Any]:
        return nnunet_dataset_json(self.classes, n_training=n_training, name=self.dataset_name)


def _resampling_kwargs(is_seg: bool, order: int) -> dict[str, Any]:
    return {"is_seg": is_seg, "order": order, "order_z": 0, "force_separate_z": None}


def network_topology(
    spacing: Sequence[float], patch_size: Sequence[int], *, max_stages: int = 6
) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """(strides per stage, kernel sizes per stage, patch padded to the total stride)."""
    dim = len(spacing)
    cur_spacing = [float(s) for s in spacing]
    cur_size = [int(s) for s in patch_size]
    strides: list[tuple[int, ...]] = [(1,) * dim]
    kernels: list[tuple[int, ...]] = []
    kernel = [1] * dim
    n_pool = [0] * dim
    while len(strides) < max_stages:
        valid = [a for a in range(dim) if cur_size[a] >= 2 * MIN_EDGE]
        if not valid:
            break
        finest = min(cur_spacing[a] for a in valid)
        valid = [a for a in valid if cur_spacing[a] / finest < 2]
        if len(valid) == 1 and cur_size[valid[0]] < 3 * MIN_EDGE:
            break
        if not valid:
            break
        for a in range(dim):
            if kernel[a] != 3 and cur_spacing[a] / min(cur_spacing) < 2:
                kernel[a] = 3
        stride = tuple(2 if a in valid else 1 for a in range(dim))
        for a in valid:
            n_pool[a] += 1
            cur_spacing[a] *= 2
            cur_size[a] = math.ceil(cur_size[a] / 2)
        strides.append(stride)
        kernels.append(tuple(kernel))
    kernels.append((3,) * dim)
    divisor = [2**n for n in n_pool]
    padded = tuple(int(math.ceil(p / d) * d) for p, d in zip(patch_size, divisor, strict=True))
    return tuple(strides), tuple(kernels), padded


def _architecture(
    strides: Sequence[Sequence[int]],
    kernels: Sequence[Sequence[int]],
    *,
    base_features: int,
    max_features: int,
    n_conv: int,
) -> ArchitectureSpec:
    n = len(strides)
    return ArchitectureSpec(
        network_class_name="PlainConvUNet",
        n_stages=n,
        features_per_stage=tuple(min(max_features, base_features * 2**i) for i in range(n)),
        kernel_sizes=tuple(tuple(k) for k in kernels),
        strides=tuple(tuple(s) for s in strides),
        n_conv_per_stage=(n_conv,) * n,
        n_conv_per_stage_decoder=(n_conv,) * (n - 1),
    )


def _stage_voxels(patch_size: Sequence[int], strides: Sequence[Sequence[int]]) -> list[int]:
    size = list(patch_size)
    out = []
    for stride in strides:
        size = [s // st for s, st in zip(size, stride, strict=True)]
        out.append(int(np.prod(size)))
    return out


def count_parameters(arch: ArchitectureSpec, n_classes: int, *, n_in: int = 1) -> int:
    """Number of parameters of a PlainConvUNet (encoder, decoder, all seg heads)."""
    feats, total, c_in = arch.features_per_stage, 0, n_in
    for s, f in enumerate(feats):
        k = int(np.prod(arch.kernel_sizes[s]))
        for u in range((arch.n_conv_per_stage or ())[s]):
            total += k * (c_in if u == 0 else f) * f + f + 2 * f
        c_in = f
    for u, n_conv in enumerate(arch.n_conv_per_stage_decoder):
        s = len(feats) - 2 - u
        f, below = feats[s], feats[s + 1]
        k = int(np.prod(arch.kernel_sizes[s]))
        total += below * f * int(np.prod(arch.strides[s + 1])) + f
        total += sum(k * (2 * f if i == 0 else f) * f + 3 * f for i in range(n_conv))
        total += f * n_classes + n_classes
    return int(total)


def estimate_training_memory_bytes(
    arch: ArchitectureSpec,
    patch_size: Sequence[int],
    *,
    n_classes: int,
    batch_size: int,
    device_kind: str = "cpu",
) -> float:
    """Peak memory of one training step (activations kept for backward, weights, optimizer).

    Elements per sample: each conv unit keeps its conv and norm outputs (LeakyReLU is in place);
    each decoder stage its transposed-conv output, the concatenation and a deep-supervision head
    with ~4 loss-sized tensors (softmax, one-hot, products). Times bytes per element (fp32 on CPU,
    mixed precision on CUDA) and an overhead factor, plus 3x the weights (weights, gradients,
    momentum) and a baseline for the runtime.
    """
    voxels = _stage_voxels(patch_size, arch.strides)
    feats = arch.features_per_stage
    n_conv = arch.n_conv_per_stage or (2,) * arch.n_stages
    elements = float(voxels[0])  # the input
    for s, f in enumerate(feats):
        elements += voxels[s] * f * n_conv[s] * 2
    for u, n_dec in enumerate(arch.n_conv_per_stage_decoder):
        s = len(feats) - 2 - u
        elements += voxels[s] * (feats[s] * (3 + 2 * n_dec) + 5 * n_classes)
    kind = "cuda" if device_kind == "cuda" else "cpu"
    act = elements * batch_size * BYTES_PER_ELEMENT[kind] * OVERHEAD
    params = count_parameters(arch, n_classes) * 4.0 * 3
    return float(act + params + BASELINE_BYTES[kind])


def _median_shape(cases: Sequence[CachedCase]) -> tuple[int, int, int]:
    med = np.median(np.asarray([c.shape for c in cases], dtype=np.float64), axis=0)
    return (round(float(med[0])), round(float(med[1])), round(float(med[2])))


def _initial_patch(spacing: Sequence[float], median_shape: Sequence[int]) -> list[int]:
    inv = 1.0 / np.asarray(spacing, dtype=np.float64)
    scaled = inv * (256.0**3 / np.prod(inv)) ** (1.0 / 3.0)
    return [int(min(round(s), m)) for s, m in zip(scaled, median_shape, strict=True)]


def _fit_patch(
    spacing: Sequence[float],
    median_shape: Sequence[int],
    budget_bytes: float,
    *,
    n_classes: int,
    device_kind: str,
    max_stages: int,
    arch_options: Mapping[str, int],
) -> tuple[tuple[int, ...], ArchitectureSpec]:
    """Largest patch (nnU-Net's shrink order) whose batch-of-2 step fits the budget."""
    patch = _initial_patch(spacing, median_shape)
    while True:
        strides, kernels, padded = network_topology(spacing, patch, max_stages=max_stages)
        arch = _architecture(strides, kernels, **arch_options)
        need = estimate_training_memory_bytes(
            arch, padded, n_classes=n_classes, batch_size=2, device_kind=device_kind
        )
        if need <= budget_bytes:
            return padded, arch
        patch = list(padded)
        ratios = [
            p / m if p > 2 * MIN_EDGE else -1.0 for p, m in zip(patch, median_shape, strict=True)
        ]
        axis = int(np.argmax(ratios))
        if ratios[axis] < 0:
            raise ConfigError(
                f"Expected a memory budget that fits at least a {patch} patch "
                f"({need / 1e9:.2f} GB needed), got {budget_bytes / 1e9:.2f} GB; raise "
                "--memory-budget-gb or use fewer base features."
            )
        divisor = int(np.prod([s[axis] for s in strides]))
        patch[axis] = max(2 * MIN_EDGE, patch[axis] - divisor)


def plan_training(
    cases: Sequence[CachedCase],
    *,
    classes: Mapping[int, str],
    dataset_name: str = "Dataset900_totalseg",
    memory_budget_gb: float = 8.0,
    patch_size: Sequence[int] | None = None,
    batch_size: int | None = None,
    base_features: int = 32,
    max_features: int = 320,
    max_stages: int = 6,
    n_conv_per_stage: int = 2,
    batch_dice: bool = False,
    device_kind: str = "cpu",
) -> TrainingPlan:
    """Plan a 3d_fullres configuration for the cached training cases (see the module doc)."""
    from totalseg.training.cache import load_cached_case

    if not cases:
        raise ConfigError("Expected preprocessed cases to plan from, got none.")
    train = [c for c in cases if c.split == "train"] or list(cases)
    spacing = train[0].spacing
    median = _median_shape(train)
    samples = [load_cached_case(c, keys=("fg_sample",))["fg_sample"] for c in train]
    intensity = IntensityProperties.from_samples(np.concatenate(samples))
    options = {
        "base_features": base_features,
        "max_features": max_features,
        "n_conv": n_conv_per_stage,
    }
    n_out = len(classes) + 1
    budget = float(memory_budget_gb) * 1e9
    if patch_size is not None:
        if len(patch_size) != 3 or any(int(p) < 1 for p in patch_size):
            raise ConfigError(f"Expected a patch size of 3 positive ints, got {patch_size}.")
        strides, kernels, patch = network_topology(spacing, patch_size, max_stages=max_stages)
        arch = _architecture(strides, kernels, **options)
    else:
        patch, arch = _fit_patch(
            spacing,
            median,
            budget,
            n_classes=n_out,
            device_kind=device_kind,
            max_stages=max_stages,
            arch_options=options,
        )
    if batch_size is None:
        batch_size = _batch_size(arch, patch, train, budget, n_out, device_kind)
    if batch_size < 1:
        raise ConfigError(f"Expected a batch size >= 1, got {batch_size}.")
    need = estimate_training_memory_bytes(
        arch, patch, n_classes=n_out, batch_size=batch_size, device_kind=device_kind
    )
    orig = np.median(np.asarray([c.original_spacing for c in train]), axis=0)
    return TrainingPlan(
        dataset_name=dataset_name,
        classes=dict(classes),
        spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        patch_size=(int(patch[0]), int(patch[1]), int(patch[2])),
        batch_size=int(batch_size),
        batch_dice=batch_dice,
        architecture=arch,
        intensity=intensity,
        median_shape=median,
        original_median_spacing=(float(orig[0]), float(orig[1]), float(orig[2])),
        estimated_memory_gb=need / 1e9,
    )


def _batch_size(
    arch: ArchitectureSpec,
    patch: Sequence[int],
    train: Sequence[CachedCase],
    budget: float,
    n_out: int,
    device_kind: str,
) -> int:
    """nnU-Net's rule: as many as the budget allows, >= 2, covering <= 5% of the dataset."""
    one = estimate_training_memory_bytes(
        arch, patch, n_classes=n_out, batch_size=1, device_kind=device_kind
    )
    two = estimate_training_memory_bytes(
        arch, patch, n_classes=n_out, batch_size=2, device_kind=device_kind
    )
    per_sample, fixed = two - one, 2 * one - two
    fits = int((budget - fixed) // per_sample) if per_sample > 0 else 2
    voxels = float(sum(np.prod(c.shape) for c in train))
    cap = round(0.05 * voxels / float(np.prod(patch)))
    return max(2, min(fits, cap))


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def write_training_plan(plan: TrainingPlan, folder: str | Path, *, n_training: int = 0) -> Path:
    """Write ``plans.json`` and ``dataset.json`` into `folder`; return the folder."""
    out = Path(folder)
    _write_json(out / "plans.json", plan.plans_json())
    _write_json(out / "dataset.json", plan.dataset_json(n_training=n_training))
    return out


def _load(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Expected a readable JSON file '{path}', got an error: {exc}.") from None


def read_training_plan(folder: str | Path) -> TrainingPlan:
    """Read back a plan written by `write_training_plan` (plans.json + dataset.json)."""
    root = Path(folder)
    plans, ds = _load(root / "plans.json"), _load(root / "dataset.json")
    plan, info = read_plan(plans, CONFIGURATION), read_dataset_json(ds)
    config = plans["configurations"][CONFIGURATION]
    if len(plan.patch_size) != 3 or not plan.intensity_properties:
        raise ConfigError(f"Expected a 3D CT plan in '{root}', got another kind of plan.")
    p, s = plan.patch_size, plan.spacing_mm
    med = config.get("median_image_size_in_voxels", list(p))
    osp = plans.get("original_median_spacing_after_transp", list(s))
    ip = plan.intensity_properties[0]
    arch = plan.architecture
    out = TrainingPlan(
        dataset_name=plan.dataset_name,
        classes=info.class_names,
        spacing=(s[0], s[1], s[2]),
        patch_size=(p[0], p[1], p[2]),
        batch_size=int(plan.batch_size or 2),
        batch_dice=bool(plan.batch_dice),
        architecture=arch,
        intensity=ip,
        median_shape=(int(med[0]), int(med[1]), int(med[2])),
        original_median_spacing=(float(osp[0]), float(osp[1]), float(osp[2])),
        estimated_memory_gb=0.0,
    )
    need = estimate_training_memory_bytes(
        arch, out.patch_size, n_classes=out.n_classes, batch_size=out.batch_size
    )
    return TrainingPlan(**{**out.__dict__, "estimated_memory_gb": need / 1e9})
