"""Typed network architecture of an nnU-Net v2 plan (`architecture` / legacy keys).

Torch-free. `parse_architecture` reads a resolved configuration dict; `to_plans_architecture`
writes the nnU-Net `architecture` dict back (dotted class names, `_kw_requires_import`).
Per-axis lists (kernel sizes, strides) are in nnU-Net array order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from totalseg.errors import ConfigError

NetworkClass = Literal["PlainConvUNet", "ResidualEncoderUNet"]
NormKind = Literal["InstanceNorm", "BatchNorm"]
NonlinKind = Literal["LeakyReLU", "ReLU"]

_CLASS_PATHS = {
    "PlainConvUNet": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "ResidualEncoderUNet": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
}
_COMMON_KWARGS = {
    "n_stages",
    "features_per_stage",
    "conv_op",
    "kernel_sizes",
    "strides",
    "n_conv_per_stage_decoder",
    "conv_bias",
    "norm_op",
    "norm_op_kwargs",
    "dropout_op",
    "dropout_op_kwargs",
    "nonlin",
    "nonlin_kwargs",
    "deep_supervision",
}
_CLASS_KWARGS = {
    "PlainConvUNet": {"n_conv_per_stage", "nonlin_first"},
    "ResidualEncoderUNet": {"n_blocks_per_stage", "block", "bottleneck_channels", "stem_channels"},
}


@dataclass(frozen=True)
class ArchitectureSpec:
    """Everything needed to build the network; mirrors dynamic_network_architectures' kwargs.

    `n_conv_per_stage` is set for PlainConvUNet, `n_blocks_per_stage` for ResidualEncoderUNet
    (the other one is None). `conv_dim` is 3 (Conv3d) or 2 (Conv2d).
    """

    network_class_name: NetworkClass
    n_stages: int
    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    n_conv_per_stage_decoder: tuple[int, ...]
    n_conv_per_stage: tuple[int, ...] | None = None
    n_blocks_per_stage: tuple[int, ...] | None = None
    conv_dim: int = 3
    conv_bias: bool = True
    norm: NormKind | None = "InstanceNorm"
    norm_eps: float = 1e-5
    norm_affine: bool = True
    norm_momentum: float = 0.1
    dropout_p: float | None = None
    nonlin: NonlinKind | None = "LeakyReLU"
    nonlin_negative_slope: float = 0.01
    nonlin_first: bool = False
    stem_channels: int | None = None

    def __post_init__(self) -> None:
        n, plain = self.n_stages, self.network_class_name == "PlainConvUNet"
        problems = []
        if self.network_class_name not in _CLASS_PATHS:
            problems.append(f"unknown class, supported: {', '.join(_CLASS_PATHS)}")
        if n < 1 or self.conv_dim not in (2, 3):
            problems.append(f"n_stages={n}, conv_dim={self.conv_dim}")
        counts_name = "n_conv_per_stage" if plain else "n_blocks_per_stage"
        counts, other = (
            (self.n_conv_per_stage, self.n_blocks_per_stage)
            if plain
            else (self.n_blocks_per_stage, self.n_conv_per_stage)
        )
        if counts is None or other is not None:
            problems.append(f"set {counts_name} (only) for this class")
        per_stage = {
            "features_per_stage": self.features_per_stage,
            "kernel_sizes": self.kernel_sizes,
            "strides": self.strides,
            counts_name: counts or (),
        }
        problems += [f"{k} has {len(v)} entries" for k, v in per_stage.items() if len(v) != n]
        if len(self.n_conv_per_stage_decoder) != n - 1:
            problems.append(
                f"n_conv_per_stage_decoder has {len(self.n_conv_per_stage_decoder)} entries "
                f"(needs {n - 1})"
            )
        bad_axes = [a for a in (*self.kernel_sizes, *self.strides) if len(a) != self.conv_dim]
        if bad_axes:
            problems.append(f"per-axis entries {bad_axes} are not {self.conv_dim}-D")
        if problems:
            raise ConfigError(
                f"Inconsistent {self.network_class_name} architecture with n_stages={n}: "
                f"{'; '.join(problems)}; fix the plans."
            )

    @property
    def total_stride(self) -> tuple[int, ...]:
        """Product of the strides per axis: patch sizes must be multiples of it."""
        out = [1] * self.conv_dim
        for stride in self.strides:
            out = [o * s for o, s in zip(out, stride, strict=True)]
        return tuple(out)


def _short(name: Any) -> str | None:
    return None if name is None else str(name).rsplit(".", 1)[-1]


def _per_stage(value: Any, n: int, dim: int | None, key: str, where: str) -> tuple[Any, ...]:
    """Expand an int to n entries (and to `dim` axes when `dim` is set), like dyn. arch."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * n
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"Expected a list for {key!r}, got {value!r} ({where}).")
    if dim is None:
        return tuple(int(v) for v in value)
    out = []
    for v in value:
        v = [v] * dim if isinstance(v, int) else v
        out.append(tuple(int(x) for x in v))
    return tuple(out)


def _legacy_to_architecture(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Old-format plans (UNet_class_name, ...) -> `architecture` dict, as nnU-Net converts them."""
    needed = (
        "UNet_class_name",
        "UNet_base_num_features",
        "n_conv_per_stage_encoder",
        "n_conv_per_stage_decoder",
        "pool_op_kernel_sizes",
        "conv_kernel_sizes",
        "unet_max_num_features",
    )
    missing = [k for k in needed if k not in config]
    if missing:
        raise ConfigError(
            f"Expected an 'architecture' entry (or the legacy keys {missing}) in {where}; "
            "re-run nnU-Net planning for this model."
        )
    cls = str(config["UNet_class_name"])
    if cls not in _CLASS_PATHS:
        raise ConfigError(
            f"Expected UNet_class_name PlainConvUNet or ResidualEncoderUNet, got {cls!r} ({where})."
        )
    n = len(config["n_conv_per_stage_encoder"])
    base, cap = int(config["UNet_base_num_features"]), int(config["unet_max_num_features"])
    dim = len(config["patch_size"])
    count_key = "n_conv_per_stage" if cls == "PlainConvUNet" else "n_blocks_per_stage"
    return {
        "network_class_name": _CLASS_PATHS[cls],
        "arch_kwargs": {
            "n_stages": n,
            "features_per_stage": [min(base * 2**i, cap) for i in range(n)],
            "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
            "kernel_sizes": config["conv_kernel_sizes"],
            "strides": config["pool_op_kernel_sizes"],
            count_key: config["n_conv_per_stage_encoder"],
            "n_conv_per_stage_decoder": config["n_conv_per_stage_decoder"],
            "conv_bias": True,
            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def _ops(kw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """conv/norm/dropout/nonlin entries -> typed fields."""
    conv = _short(kw.get("conv_op"))
    if conv not in ("Conv2d", "Conv3d"):
        raise ConfigError(
            f"Expected conv_op Conv2d or Conv3d, got {kw.get('conv_op')!r} ({where})."
        )
    out: dict[str, Any] = {"conv_dim": int(conv[4])}
    norm, norm_kw = _short(kw.get("norm_op")), dict(kw.get("norm_op_kwargs") or {})
    if norm is not None and norm not in (f"InstanceNorm{conv[4]}d", f"BatchNorm{conv[4]}d"):
        raise ConfigError(f"Unsupported norm_op {kw.get('norm_op')!r} ({where}).")
    out["norm"] = None if norm is None else norm[:-2]
    out["norm_eps"] = float(norm_kw.pop("eps", 1e-5))
    out["norm_affine"] = bool(norm_kw.pop("affine", norm != f"InstanceNorm{conv[4]}d"))
    out["norm_momentum"] = float(norm_kw.pop("momentum", 0.1))
    nonlin, nonlin_kw = _short(kw.get("nonlin")), dict(kw.get("nonlin_kwargs") or {})
    if nonlin not in (None, "LeakyReLU", "ReLU"):
        raise ConfigError(f"Unsupported nonlin {kw.get('nonlin')!r} ({where}).")
    out["nonlin"] = nonlin
    nonlin_kw.pop("inplace", None)
    out["nonlin_negative_slope"] = float(nonlin_kw.pop("negative_slope", 0.01))
    dropout, dropout_kw = _short(kw.get("dropout_op")), dict(kw.get("dropout_op_kwargs") or {})
    if dropout not in (None, "Dropout", "Dropout2d", "Dropout3d"):
        raise ConfigError(f"Unsupported dropout_op {kw.get('dropout_op')!r} ({where}).")
    out["dropout_p"] = None if dropout is None else float(dropout_kw.pop("p", 0.5))
    dropout_kw.pop("inplace", None)
    leftovers = {**norm_kw, **nonlin_kw, **dropout_kw}
    if leftovers:
        raise ConfigError(f"Unsupported op kwargs {leftovers} ({where}).")
    return out


def parse_architecture(config: Mapping[str, Any], *, where: str) -> ArchitectureSpec:
    """The `architecture` entry of a resolved configuration (or its legacy keys) -> spec."""
    arch = config.get("architecture")
    if arch is None:
        arch = _legacy_to_architecture(config, where)
    if not isinstance(arch, Mapping) or not isinstance(arch.get("arch_kwargs"), Mapping):
        raise ConfigError(f"Expected 'architecture' with 'arch_kwargs' in {where}, got {arch!r}.")
    cls = _short(arch.get("network_class_name"))
    if cls not in _CLASS_PATHS:
        raise ConfigError(
            f"Unsupported network class {arch.get('network_class_name')!r} ({where}); supported: "
            f"{', '.join(_CLASS_PATHS)}."
        )
    kw = dict(arch["arch_kwargs"])
    unknown = set(kw) - _COMMON_KWARGS - _CLASS_KWARGS[cls]
    if unknown:
        raise ConfigError(f"Unsupported {cls} arch_kwargs {sorted(unknown)} ({where}).")
    if _short(kw.get("block", "BasicBlockD")) != "BasicBlockD" or kw.get("bottleneck_channels"):
        raise ConfigError(
            f"Only BasicBlockD residual blocks are supported, got {kw.get('block')!r} ({where})."
        )
    ops = _ops(kw, where)
    try:
        n = int(kw["n_stages"])
        count_key = "n_conv_per_stage" if cls == "PlainConvUNet" else "n_blocks_per_stage"
        counts = _per_stage(kw[count_key], n, None, count_key, where)
        return ArchitectureSpec(
            network_class_name=cls,  # type: ignore[arg-type]
            n_stages=n,
            features_per_stage=_per_stage(kw["features_per_stage"], n, None, "features", where),
            kernel_sizes=_per_stage(kw["kernel_sizes"], n, ops["conv_dim"], "kernel_sizes", where),
            strides=_per_stage(kw["strides"], n, ops["conv_dim"], "strides", where),
            n_conv_per_stage_decoder=_per_stage(
                kw["n_conv_per_stage_decoder"], n - 1, None, "n_conv_per_stage_decoder", where
            ),
            n_conv_per_stage=counts if cls == "PlainConvUNet" else None,
            n_blocks_per_stage=counts if cls != "PlainConvUNet" else None,
            conv_bias=bool(kw.get("conv_bias", False)),
            nonlin_first=bool(kw.get("nonlin_first", False)),
            stem_channels=None if kw.get("stem_channels") is None else int(kw["stem_channels"]),
            **ops,
        )
    except KeyError as exc:
        raise ConfigError(f"Expected arch_kwargs key {exc.args[0]!r} in {where}.") from None


def to_plans_architecture(spec: ArchitectureSpec) -> dict[str, Any]:
    """The nnU-Net plans.json `architecture` dict of a spec (for writing model folders)."""
    d = spec.conv_dim
    kw: dict[str, Any] = {
        "n_stages": spec.n_stages,
        "features_per_stage": list(spec.features_per_stage),
        "conv_op": f"torch.nn.modules.conv.Conv{d}d",
        "kernel_sizes": [list(k) for k in spec.kernel_sizes],
        "strides": [list(s) for s in spec.strides],
    }
    if spec.network_class_name == "PlainConvUNet":
        kw["n_conv_per_stage"] = list(spec.n_conv_per_stage or ())
    else:
        kw["n_blocks_per_stage"] = list(spec.n_blocks_per_stage or ())
    kw["n_conv_per_stage_decoder"] = list(spec.n_conv_per_stage_decoder)
    kw["conv_bias"] = spec.conv_bias
    module = {"InstanceNorm": "instancenorm", "BatchNorm": "batchnorm"}
    kw["norm_op"] = (
        None if spec.norm is None else f"torch.nn.modules.{module[spec.norm]}.{spec.norm}{d}d"
    )
    norm_kwargs: dict[str, Any] = {"eps": spec.norm_eps, "affine": spec.norm_affine}
    if spec.norm == "BatchNorm":
        norm_kwargs["momentum"] = spec.norm_momentum
    kw["norm_op_kwargs"] = norm_kwargs
    kw["dropout_op"] = None if spec.dropout_p is None else f"torch.nn.Dropout{d}d"
    kw["dropout_op_kwargs"] = None if spec.dropout_p is None else {"p": spec.dropout_p}
    kw["nonlin"] = None if spec.nonlin is None else f"torch.nn.{spec.nonlin}"
    nonlin_kwargs: dict[str, Any] = {"inplace": True}
    if spec.nonlin == "LeakyReLU" and spec.nonlin_negative_slope != 0.01:
        nonlin_kwargs["negative_slope"] = spec.nonlin_negative_slope
    kw["nonlin_kwargs"] = nonlin_kwargs
    if spec.nonlin_first:
        kw["nonlin_first"] = True
    if spec.stem_channels is not None:
        kw["stem_channels"] = spec.stem_channels
    return {
        "network_class_name": _CLASS_PATHS[spec.network_class_name],
        "arch_kwargs": kw,
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
