"""Typed views of nnU-Net v2 `plans.json` (one configuration) and `dataset.json`.

Axis order: `Plan.patch_size`, `Plan.spacing_mm` and every per-axis list of the architecture
(kernel sizes, strides) are in nnU-Net **array order** exactly as plans.json stores them, i.e.
the axis order of the image array after `transpose_forward` (for SimpleITK-read NIfTI that is
(z, y, x)). Converting to totalseg's (i, j, k) order is the preprocessing layer's job.

plans.json/dataset.json are nnU-Net's formats: keys nnU-Net does not use at inference are
ignored here, but everything we use is validated, and architecture options we cannot honour
(unknown network classes, ops or arch kwargs) are errors.
Configuration inheritance follows nnU-Net 2.8.1 exactly: the child's top-level keys replace
the parent's (`dict.update`, not a recursive merge), resolved along the chain, cycles refused.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from totalseg.errors import ConfigError
from totalseg.models.arch import ArchitectureSpec, parse_architecture

__all__ = [
    "ArchitectureSpec",
    "DatasetInfo",
    "IntensityProperties",
    "Plan",
    "ResamplingSpec",
    "read_dataset_json",
    "read_plan",
    "resolve_configuration",
]


@dataclass(frozen=True)
class IntensityProperties:
    """Foreground intensity statistics of one input channel (used by CTNormalization)."""

    mean: float
    std: float
    median: float
    min: float
    max: float
    percentile_00_5: float
    percentile_99_5: float

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, where: str = "plans.json") -> IntensityProperties:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in raw]
        if missing:
            raise ConfigError(
                f"Expected intensity properties {names}, missing {missing} ({where}); "
                "re-export the plans with nnU-Net v2."
            )
        try:
            return cls(**{n: float(raw[n]) for n in names})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Expected numeric intensity properties ({where}): {exc}.") from None

    @classmethod
    def from_samples(cls, samples: Any) -> IntensityProperties:
        """nnU-Net's statistics of sampled foreground voxel values (the planner's fingerprint)."""
        v = np.asarray(samples, dtype=np.float64).ravel()
        if v.size == 0:
            raise ConfigError(
                "Expected labelled voxels to compute CT statistics, got none; the training "
                "cases have empty ground truth for the chosen classes."
            )
        return cls(
            mean=float(np.mean(v)),
            std=float(np.std(v)),
            median=float(np.median(v)),
            min=float(np.min(v)),
            max=float(np.max(v)),
            percentile_00_5=float(np.percentile(v, 0.5)),
            percentile_99_5=float(np.percentile(v, 99.5)),
        )

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ResamplingSpec:
    """A resampling function of the plan: its nnU-Net name and keyword arguments (read-only).

    The properties give the arguments of `resample_data_or_seg_to_shape` with that function's
    defaults where the plan leaves them out.
    """

    fn_name: str
    kwargs: Mapping[str, Any]

    @property
    def is_seg(self) -> bool:
        return bool(self.kwargs.get("is_seg", False))

    @property
    def order(self) -> int:
        return int(self.kwargs.get("order", 3))

    @property
    def order_z(self) -> int:
        return int(self.kwargs.get("order_z", 0))

    @property
    def force_separate_z(self) -> bool | None:
        value = self.kwargs.get("force_separate_z", False)
        return None if value is None else bool(value)

    @property
    def separate_z_anisotropy_threshold(self) -> float:
        return float(self.kwargs.get("separate_z_anisotropy_threshold", 3.0))


@dataclass(frozen=True)
class Plan:
    """One resolved configuration of a plans.json (see the module doc for axis order)."""

    configuration: str
    dataset_name: str
    plans_name: str
    patch_size: tuple[int, ...]
    spacing_mm: tuple[float, ...]
    transpose_forward: tuple[int, ...]
    transpose_backward: tuple[int, ...]
    normalization_schemes: tuple[str, ...]
    use_mask_for_norm: tuple[bool, ...]
    intensity_properties: tuple[IntensityProperties, ...]
    resampling_data: ResamplingSpec
    resampling_seg: ResamplingSpec
    resampling_probabilities: ResamplingSpec
    architecture: ArchitectureSpec
    image_reader_writer: str
    preprocessor_name: str
    label_manager: str
    previous_stage: str | None
    batch_size: int | None
    batch_dice: bool | None

    @property
    def spacing(self) -> tuple[float, ...]:
        """Alias of `spacing_mm` (nnU-Net's name); array order."""
        return self.spacing_mm

    @property
    def n_dims(self) -> int:
        return len(self.patch_size)


@dataclass(frozen=True)
class DatasetInfo:
    """What inference needs from dataset.json."""

    name: str | None
    labels: Mapping[str, int]
    channel_names: tuple[str, ...]
    file_ending: str
    ignore_label: int | None

    @property
    def n_heads(self) -> int:
        """Output channels of the network: every label incl. background, excl. `ignore`."""
        return len(self.labels) - (self.ignore_label is not None)

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def class_names(self) -> dict[int, str]:
        """Foreground label value -> name (no background, no ignore label)."""
        return {v: k for k, v in self.labels.items() if v != 0 and v != self.ignore_label}


def _tuple_of(value: Any, kind: type, key: str, where: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"Expected a list for {key!r}, got {value!r} ({where}).")
    try:
        return tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"Expected a list of {kind.__name__} for {key!r}, got {value!r} ({where})."
        ) from None


def resolve_configuration(plans_json: Mapping[str, Any], configuration: str) -> dict[str, Any]:
    """The configuration dict with `inherits_from` resolved as nnU-Net 2.8.1 does it."""
    configs = plans_json.get("configurations")
    if not isinstance(configs, Mapping):
        raise ConfigError(
            "Expected a 'configurations' dict in plans.json, got none; is this an nnU-Net v2 "
            "plans file?"
        )
    chain: list[str] = []
    name: str | None = configuration
    while name is not None:
        if name not in configs:
            where = f" (inherited by {chain[-1]!r})" if chain else ""
            raise ConfigError(
                f"Unknown configuration {name!r}{where}; plans.json has: "
                f"{', '.join(configs)}. Pass one of these."
            )
        if name in chain:
            raise ConfigError(
                f"Configuration inheritance cycle in plans.json: {' -> '.join([*chain, name])}; "
                "fix 'inherits_from'."
            )
        chain.append(name)
        parent = configs[name].get("inherits_from")
        name = None if parent is None else str(parent)
    resolved: dict[str, Any] = {}
    for link in reversed(chain):
        resolved.update(copy.deepcopy(dict(configs[link])))
    resolved.pop("inherits_from", None)
    return resolved


def _intensity(plans_json: Mapping[str, Any], n_channels: int) -> tuple[IntensityProperties, ...]:
    raw = plans_json.get("foreground_intensity_properties_per_channel")
    if raw is None:
        raw = plans_json.get("foreground_intensity_properties_by_modality", {})
    out = []
    for c in range(n_channels):
        entry = raw.get(str(c), raw.get(c)) if isinstance(raw, Mapping) else None
        if entry is None:
            break
        out.append(IntensityProperties.from_dict(entry, where=f"plans.json channel {c}"))
    return tuple(out)


def _resampling(config: Mapping[str, Any], which: str) -> ResamplingSpec:
    fn = config.get(f"resampling_fn_{which}")
    kwargs = config.get(f"resampling_fn_{which}_kwargs", {})
    if not isinstance(fn, str) or not isinstance(kwargs, Mapping):
        raise ConfigError(
            f"Expected 'resampling_fn_{which}' (a function name) and its kwargs dict in "
            f"plans.json, got {fn!r} / {kwargs!r}."
        )
    return ResamplingSpec(fn_name=fn, kwargs=MappingProxyType(dict(kwargs)))


def _transposes(plans_json: Mapping[str, Any], n_dims: int) -> tuple[tuple[int, ...], ...]:
    identity = list(range(n_dims))
    forward = _tuple_of(
        plans_json.get("transpose_forward", identity), int, "transpose_forward", "plans.json"
    )
    backward = _tuple_of(
        plans_json.get("transpose_backward", identity), int, "transpose_backward", "plans.json"
    )
    valid = (
        sorted(forward) == identity
        and sorted(backward) == identity
        and [forward[i] for i in backward] == identity
    )
    if not valid:
        raise ConfigError(
            f"Expected transpose_forward/backward to be inverse permutations of 0..{n_dims - 1}, "
            f"got {forward} / {backward} (plans.json)."
        )
    return forward, backward


def read_plan(plans_json: Mapping[str, Any], configuration: str) -> Plan:
    """Parse one configuration of a plans.json dict into a typed, validated `Plan`."""
    config = resolve_configuration(plans_json, configuration)
    where = f"plans.json configuration {configuration!r}"
    for key in ("patch_size", "spacing", "normalization_schemes"):
        if key not in config:
            raise ConfigError(f"Expected key {key!r} in {where}, got none.")
    patch_size = _tuple_of(config["patch_size"], int, "patch_size", where)
    spacing = _tuple_of(config["spacing"], float, "spacing", where)
    schemes = _tuple_of(config["normalization_schemes"], str, "normalization_schemes", where)
    use_mask = _tuple_of(
        config.get("use_mask_for_norm", [False] * len(schemes)), bool, "use_mask_for_norm", where
    )
    if len(spacing) != len(patch_size) or len(use_mask) != len(schemes):
        raise ConfigError(
            f"Expected spacing {spacing} to match patch_size {patch_size} and use_mask_for_norm "
            f"{use_mask} to match normalization_schemes {schemes} in length ({where})."
        )
    transpose_forward, transpose_backward = _transposes(plans_json, len(patch_size))
    intensity = _intensity(plans_json, len(schemes))
    if "CTNormalization" in schemes and len(intensity) < len(schemes):
        raise ConfigError(
            "Expected foreground_intensity_properties_per_channel for every channel in plans.json "
            f"(CTNormalization needs them), got {len(intensity)} of {len(schemes)}."
        )
    batch_size, previous = config.get("batch_size"), config.get("previous_stage")
    batch_dice = config.get("batch_dice")
    return Plan(
        configuration=configuration,
        dataset_name=str(plans_json.get("dataset_name", "")),
        plans_name=str(plans_json.get("plans_name", "")),
        patch_size=patch_size,
        spacing_mm=spacing,
        transpose_forward=transpose_forward,
        transpose_backward=transpose_backward,
        normalization_schemes=schemes,
        use_mask_for_norm=use_mask,
        intensity_properties=intensity,
        resampling_data=_resampling(config, "data"),
        resampling_seg=_resampling(config, "seg"),
        resampling_probabilities=_resampling(config, "probabilities"),
        architecture=parse_architecture(config, where=where),
        image_reader_writer=str(plans_json.get("image_reader_writer", "SimpleITKIO")),
        preprocessor_name=str(config.get("preprocessor_name", "DefaultPreprocessor")),
        label_manager=str(plans_json.get("label_manager", "LabelManager")),
        previous_stage=None if previous is None else str(previous),
        batch_size=None if batch_size is None else int(batch_size),
        batch_dice=None if batch_dice is None else bool(batch_dice),
    )


def read_dataset_json(raw: Mapping[str, Any], *, where: str = "dataset.json") -> DatasetInfo:
    """Parse dataset.json: labels 0..N-1 with background 0; region-based training is refused."""
    labels_raw = raw.get("labels")
    if not isinstance(labels_raw, Mapping) or not labels_raw:
        raise ConfigError(f"Expected a non-empty 'labels' dict in {where}, got {labels_raw!r}.")
    regions = any(isinstance(v, (list, tuple)) for v in labels_raw.values())
    if regions or "regions_class_order" in raw:
        raise ConfigError(
            f"Region-based models (label values that are lists, {where}) are not supported; "
            "use a model trained on plain labels."
        )
    try:
        labels = {str(k): int(v) for k, v in labels_raw.items()}
    except (TypeError, ValueError):
        raise ConfigError(
            f"Expected integer label values in {where}, got {dict(labels_raw)}."
        ) from None
    if labels.get("background") != 0:
        raise ConfigError(f"Expected 'background': 0 in the labels of {where}, got {labels}.")
    ignore = labels.get("ignore")
    values = sorted(v for k, v in labels.items() if k != "ignore")
    if values != list(range(len(values))) or (ignore is not None and ignore <= values[-1]):
        raise ConfigError(
            "Expected label values 0..N-1 (and 'ignore' above them), got "
            f"{sorted(labels.values())} ({where}); nnU-Net's argmax channel equals the label value."
        )
    if len(set(labels.values())) != len(labels):
        raise ConfigError(f"Expected distinct label values in {where}, got {labels}.")
    channels_raw = raw.get("channel_names", raw.get("modality"))
    if not isinstance(channels_raw, Mapping) or not channels_raw:
        raise ConfigError(f"Expected a 'channel_names' dict in {where}, got {channels_raw!r}.")
    keys = sorted(channels_raw, key=lambda k: int(k) if str(k).isdigit() else -1)
    if [int(k) if str(k).isdigit() else -1 for k in keys] != list(range(len(keys))):
        raise ConfigError(f"Expected channel keys '0'..'N-1' in {where}, got {list(channels_raw)}.")
    return DatasetInfo(
        name=None if raw.get("name") is None else str(raw["name"]),
        labels=MappingProxyType(dict(sorted(labels.items(), key=lambda kv: kv[1]))),
        channel_names=tuple(str(channels_raw[k]) for k in keys),
        file_ending=str(raw.get("file_ending", ".nii.gz")),
        ignore_label=ignore,
    )
