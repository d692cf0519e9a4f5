"""U-Nets state-dict compatible with nnU-Net v2 (dynamic_network_architectures 0.4.4).

`PlainConvUNet` (default nnUNetPlans) and `ResidualEncoderUNet` (nnUNetResEnc plans) use the
same module tree as dynamic_network_architectures, so their `state_dict()` has the same keys,
shapes and order, including nnU-Net's alias keys: every conv unit registers its conv/norm both
as attributes and inside `all_modules`, and the decoder holds the encoder (`decoder.encoder.*`).
nnU-Net checkpoints therefore load with `strict=True`, and checkpoints we write load in nnU-Net.

Tensors are (N, C, *spatial) in nnU-Net array order. `forward` returns logits (no softmax);
with deep supervision on it returns one output per decoder scale, highest resolution first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from totalseg.models.arch import ArchitectureSpec

__all__ = [
    "PlainConvUNet",
    "ResidualEncoderUNet",
    "UNet",
    "build_network",
    "initialize_he",
    "input_conv_key",
]


def _conv_cls(dim: int) -> type[nn.Module]:
    return nn.Conv3d if dim == 3 else nn.Conv2d


class ConvUnit(nn.Module):
    """conv -> [dropout] -> [norm] -> [nonlin] (norm/nonlin swapped with `nonlin_first`)."""

    def __init__(
        self,
        spec: ArchitectureSpec,
        c_in: int,
        c_out: int,
        kernel: Sequence[int],
        stride: Sequence[int],
        *,
        bias: bool,
        dropout: bool = True,
        nonlin: bool = True,
        nonlin_first: bool = False,
    ) -> None:
        super().__init__()
        d = spec.conv_dim
        self.conv = _conv_cls(d)(
            c_in,
            c_out,
            tuple(kernel),
            tuple(stride),
            padding=[(k - 1) // 2 for k in kernel],
            dilation=1,
            bias=bias,
        )
        ops: list[nn.Module] = [self.conv]
        if dropout and spec.dropout_p is not None:
            self.dropout = (nn.Dropout3d if d == 3 else nn.Dropout2d)(p=spec.dropout_p)
            ops.append(self.dropout)
        if spec.norm is not None:
            self.norm = _make_norm(spec, c_out)
            ops.append(self.norm)
        if nonlin and spec.nonlin is not None:
            self.nonlin = _make_nonlin(spec)
            ops.append(self.nonlin)
        if nonlin_first and spec.norm is not None and nonlin and spec.nonlin is not None:
            ops[-1], ops[-2] = ops[-2], ops[-1]
        self.all_modules = nn.Sequential(*ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_modules(x)


def _make_norm(spec: ArchitectureSpec, channels: int) -> nn.Module:
    d = spec.conv_dim
    if spec.norm == "InstanceNorm":
        cls = nn.InstanceNorm3d if d == 3 else nn.InstanceNorm2d
        return cls(channels, eps=spec.norm_eps, affine=spec.norm_affine)
    bn = nn.BatchNorm3d if d == 3 else nn.BatchNorm2d
    return bn(channels, eps=spec.norm_eps, momentum=spec.norm_momentum, affine=spec.norm_affine)


def _make_nonlin(spec: ArchitectureSpec) -> nn.Module:
    if spec.nonlin == "LeakyReLU":
        return nn.LeakyReLU(negative_slope=spec.nonlin_negative_slope, inplace=True)
    return nn.ReLU(inplace=True)


class StackedConvs(nn.Module):
    """`n` conv units; only the first has the stride (and changes the channel count)."""

    def __init__(
        self,
        spec: ArchitectureSpec,
        n: int,
        c_in: int,
        c_out: int,
        kernel: Sequence[int],
        stride: Sequence[int],
        *,
        nonlin_first: bool = False,
    ) -> None:
        super().__init__()
        ones = [1] * spec.conv_dim
        self.convs = nn.Sequential(
            *[
                ConvUnit(
                    spec,
                    c_in if i == 0 else c_out,
                    c_out,
                    kernel,
                    stride if i == 0 else ones,
                    bias=spec.conv_bias,
                    nonlin_first=nonlin_first,
                )
                for i in range(n)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class BasicBlockD(nn.Module):
    """ResNet-D block: nonlin(conv2(conv1(x)) + skip(x)); skip = [avgpool] + [1x1 conv + norm]."""

    def __init__(
        self,
        spec: ArchitectureSpec,
        c_in: int,
        c_out: int,
        kernel: Sequence[int],
        stride: Sequence[int],
    ) -> None:
        super().__init__()
        d = spec.conv_dim
        self.conv1 = ConvUnit(spec, c_in, c_out, kernel, stride, bias=spec.conv_bias)
        self.conv2 = ConvUnit(
            spec, c_out, c_out, kernel, [1] * d, bias=spec.conv_bias, dropout=False, nonlin=False
        )
        self.nonlin2 = _make_nonlin(spec) if spec.nonlin is not None else nn.Identity()
        has_stride = any(s != 1 for s in stride)
        skip: list[nn.Module] = []
        if has_stride:
            pool: Any = nn.AvgPool3d if d == 3 else nn.AvgPool2d
            skip.append(pool(tuple(stride), tuple(stride)))
        if c_in != c_out:
            skip.append(
                ConvUnit(
                    spec, c_in, c_out, [1] * d, [1] * d, bias=False, dropout=False, nonlin=False
                )
            )
        self.skip = nn.Sequential(*skip) if skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.skip(x)
        out = self.conv2(self.conv1(x))
        out += residual
        return self.nonlin2(out)


class ResidualStage(nn.Module):
    def __init__(self, spec: ArchitectureSpec, n: int, c_in: int, c_out: int, s: int) -> None:
        super().__init__()
        ones = [1] * spec.conv_dim
        kernel, stride = spec.kernel_sizes[s], spec.strides[s]
        self.blocks = nn.Sequential(
            *[
                BasicBlockD(
                    spec, c_in if b == 0 else c_out, c_out, kernel, stride if b == 0 else ones
                )
                for b in range(n)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class PlainEncoder(nn.Module):
    def __init__(self, spec: ArchitectureSpec, n_in: int) -> None:
        super().__init__()
        counts = spec.n_conv_per_stage or ()
        stages, c_in = [], n_in
        for s, c_out in enumerate(spec.features_per_stage):
            stages.append(
                nn.Sequential(
                    StackedConvs(
                        spec,
                        counts[s],
                        c_in,
                        c_out,
                        spec.kernel_sizes[s],
                        spec.strides[s],
                        nonlin_first=spec.nonlin_first,
                    )
                )
            )
            c_in = c_out
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class ResidualEncoder(nn.Module):
    def __init__(self, spec: ArchitectureSpec, n_in: int) -> None:
        super().__init__()
        stem = spec.stem_channels or spec.features_per_stage[0]
        ones = [1] * spec.conv_dim
        self.stem = StackedConvs(spec, 1, n_in, stem, spec.kernel_sizes[0], ones)
        counts = spec.n_blocks_per_stage or ()
        stages, c_in = [], stem
        for s, c_out in enumerate(spec.features_per_stage):
            stages.append(ResidualStage(spec, counts[s], c_in, c_out, s))
            c_in = c_out
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class UNetDecoder(nn.Module):
    """Transposed conv up, concat (upsampled, skip), conv units; 1x1 seg head per scale."""

    def __init__(
        self, encoder: nn.Module, spec: ArchitectureSpec, n_out: int, *, deep_supervision: bool
    ) -> None:
        super().__init__()
        self.deep_supervision = deep_supervision
        self.encoder = encoder  # registered on purpose: nnU-Net's `decoder.encoder.*` alias keys
        d, feats = spec.conv_dim, spec.features_per_stage
        transp: Any = nn.ConvTranspose3d if d == 3 else nn.ConvTranspose2d
        plain = spec.network_class_name == "PlainConvUNet"
        stages, transpconvs, seg_layers = [], [], []
        for s in range(1, spec.n_stages):
            below, skip, stride = feats[-s], feats[-(s + 1)], spec.strides[-s]
            transpconvs.append(
                transp(below, skip, tuple(stride), tuple(stride), bias=spec.conv_bias)
            )
            stages.append(
                StackedConvs(
                    spec,
                    spec.n_conv_per_stage_decoder[s - 1],
                    2 * skip,
                    skip,
                    spec.kernel_sizes[-(s + 1)],
                    [1] * d,
                    nonlin_first=spec.nonlin_first and plain,
                )
            )
            seg_layers.append(_conv_cls(d)(skip, n_out, 1, 1, 0, bias=True))
        self.stages = nn.ModuleList(stages)
        self.transpconvs = nn.ModuleList(transpconvs)
        self.seg_layers = nn.ModuleList(seg_layers)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        x = skips[-1]
        outputs = []
        last = len(self.stages) - 1
        for s, (up, stage) in enumerate(zip(self.transpconvs, self.stages, strict=True)):
            x = stage(torch.cat((up(x), skips[-(s + 2)]), 1))
            if self.deep_supervision:
                outputs.append(self.seg_layers[s](x))
            elif s == last:
                outputs.append(self.seg_layers[-1](x))
        return outputs[::-1] if self.deep_supervision else outputs[0]


class UNet(nn.Module):
    """Encoder + UNetDecoder; the encoder kind follows `spec.network_class_name`."""

    def __init__(
        self,
        spec: ArchitectureSpec,
        input_channels: int,
        num_classes: int,
        *,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.input_channels = input_channels
        self.num_classes = num_classes
        plain = spec.network_class_name == "PlainConvUNet"
        self.encoder = (
            PlainEncoder(spec, input_channels) if plain else ResidualEncoder(spec, input_channels)
        )
        self.decoder = UNetDecoder(
            self.encoder, spec, num_classes, deep_supervision=deep_supervision
        )

    @property
    def deep_supervision(self) -> bool:
        return bool(self.decoder.deep_supervision)

    @deep_supervision.setter
    def deep_supervision(self, value: bool) -> None:
        self.decoder.deep_supervision = bool(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.decoder(self.encoder(x))


class PlainConvUNet(UNet):
    """nnU-Net's default U-Net (strided-conv encoder, `n_conv_per_stage` units per stage)."""


class ResidualEncoderUNet(UNet):
    """nnU-Net ResEnc U-Net (stem + BasicBlockD stages, plain decoder)."""


def build_network(
    spec: ArchitectureSpec, n_in: int, n_out: int, deep_supervision: bool = False
) -> UNet:
    """The network of a plan: `n_in` input channels, `n_out` logits channels (incl. background)."""
    cls = PlainConvUNet if spec.network_class_name == "PlainConvUNet" else ResidualEncoderUNet
    return cls(spec, n_in, n_out, deep_supervision=deep_supervision)


def initialize_he(network: nn.Module, *, neg_slope: float = 1e-2) -> None:
    """nnU-Net's random init: He-normal conv weights, zero biases; ResEnc: zero last norm."""
    convs = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)

    def init(module: nn.Module) -> None:
        if isinstance(module, convs):
            nn.init.kaiming_normal_(module.weight, a=neg_slope)
            if module.bias is not None:
                nn.init.constant_(module.bias, 0)
        norm = getattr(module.conv2, "norm", None) if isinstance(module, BasicBlockD) else None
        if norm is not None and norm.weight is not None:
            nn.init.constant_(norm.weight, 0)
            nn.init.constant_(norm.bias, 0)

    network.apply(init)


def input_conv_key(spec: ArchitectureSpec) -> str:
    """state_dict key of the first conv's weight (its dim 1 is the number of input channels)."""
    if spec.network_class_name == "PlainConvUNet":
        return "encoder.stages.0.0.convs.0.conv.weight"
    return "encoder.stem.convs.0.conv.weight"
