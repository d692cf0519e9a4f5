"""nnU-Net 1's `Generic_UNet` as `nnUNetTrainerV2.initialize_network` builds it, state-dict
compatible with v1 checkpoints (`conv_blocks_context.*`, `conv_blocks_localization.*`, `tu.*`,
`seg_outputs.*`), so they load with `strict=True` and no key mapping.

Built from an `ArchitectureSpec` in v1 terms: `kernel_sizes` = the plan's `conv_kernel_sizes`
(num_pool + 1 entries), `strides` = [1, 1, 1] + `pool_op_kernel_sizes`, `conv_bias` True,
InstanceNorm (eps 1e-5, affine), LeakyReLU 0.01, no dropout (p = 0), seg heads without bias.
Unlike nnU-Net 2's decoder, v1's decoder stage `u` uses the kernel of the level *below* it
(`conv_kernel_sizes[-(u + 1)]`; see nnunet_v2_format.md 7.3). Padding is 1 where the kernel is
3, else 0. `forward` returns the full-resolution logits (no softmax; v1's predictor applies it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from totalseg.models.arch import ArchitectureSpec

__all__ = ["GenericUNet"]


class _ConvNormNonlin(nn.Module):
    """v1's ConvDropoutNormNonlin without dropout (p = 0): conv -> instnorm -> lrelu."""

    def __init__(
        self,
        spec: ArchitectureSpec,
        c_in: int,
        c_out: int,
        kernel: Sequence[int],
        stride: Sequence[int],
    ) -> None:
        super().__init__()
        conv: Any = nn.Conv3d
        self.conv = conv(
            c_in, c_out, tuple(kernel), tuple(stride),
            padding=tuple(1 if k == 3 else 0 for k in kernel), dilation=1, bias=spec.conv_bias,
        )  # fmt: skip
        self.instnorm = nn.InstanceNorm3d(c_out, eps=spec.norm_eps, affine=spec.norm_affine)
        self.lrelu = nn.LeakyReLU(negative_slope=spec.nonlin_negative_slope, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lrelu(self.instnorm(self.conv(x)))


class _StackedConvLayers(nn.Module):
    """`n` units (at least one, like v1); only the first has the stride."""

    def __init__(
        self,
        spec: ArchitectureSpec,
        c_in: int,
        c_out: int,
        n: int,
        kernel: Sequence[int],
        stride: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        first = stride if stride is not None else (1, 1, 1)
        units = [_ConvNormNonlin(spec, c_in, c_out, kernel, first)]
        units += [_ConvNormNonlin(spec, c_out, c_out, kernel, (1, 1, 1)) for _ in range(n - 1)]
        self.blocks = nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class GenericUNet(nn.Module):
    """Generic_UNet(convolutional pooling and upsampling, deep supervision off at inference)."""

    def __init__(self, spec: ArchitectureSpec, n_in: int, n_out: int) -> None:
        super().__init__()
        n_conv = (spec.n_conv_per_stage or (2,))[0]
        kernels, pools = spec.kernel_sizes, spec.strides[1:]
        num_pool, feats = len(pools), spec.features_per_stage
        context: list[nn.Module] = []
        c_in = n_in
        for d in range(num_pool):
            stride = pools[d - 1] if d > 0 else None
            context.append(_StackedConvLayers(spec, c_in, feats[d], n_conv, kernels[d], stride))
            c_in = feats[d]
        bottom = feats[num_pool]
        context.append(
            nn.Sequential(
                _StackedConvLayers(spec, c_in, bottom, n_conv - 1, kernels[num_pool], pools[-1]),
                _StackedConvLayers(spec, bottom, bottom, 1, kernels[num_pool]),
            )
        )
        self.conv_blocks_context = nn.ModuleList(context)
        tu, localization, seg = [], [], []
        down = bottom
        for u in range(num_pool):
            skip = feats[num_pool - 1 - u]
            pool = tuple(pools[-(u + 1)])
            transposed: Any = nn.ConvTranspose3d
            tu.append(transposed(down, skip, pool, pool, bias=False))
            kernel = kernels[-(u + 1)]  # v1: the kernel of the level below
            localization.append(
                nn.Sequential(
                    _StackedConvLayers(spec, 2 * skip, skip, n_conv - 1, kernel),
                    _StackedConvLayers(spec, skip, skip, 1, kernel),
                )
            )
            seg.append(nn.Conv3d(skip, n_out, 1, 1, 0, 1, 1, bias=False))
            down = skip
        self.conv_blocks_localization = nn.ModuleList(localization)
        self.tu = nn.ModuleList(tu)
        self.seg_outputs = nn.ModuleList(seg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.conv_blocks_context[:-1]:
            x = block(x)
            skips.append(x)
        x = self.conv_blocks_context[-1](x)
        for u, (up, block) in enumerate(zip(self.tu, self.conv_blocks_localization, strict=True)):
            x = block(torch.cat((up(x), skips[-(u + 1)]), dim=1))
        return self.seg_outputs[-1](x)
