"""Our U-Nets against dynamic_network_architectures 0.4.4 (the oracle, test-only)."""

from __future__ import annotations

import pydoc
from dataclasses import replace
from typing import Any

import pytest
import torch

from totalseg.models.arch import ArchitectureSpec, to_plans_architecture
from totalseg.models.unet import build_network, initialize_he, input_conv_key


def _theirs(spec: ArchitectureSpec, n_in: int, n_out: int, deep_supervision: bool) -> Any:
    """Built exactly like nnunetv2's get_network_from_plans (pydoc.locate of the dotted names)."""
    arch = to_plans_architecture(spec)
    kwargs = dict(arch["arch_kwargs"])
    for key in arch["_kw_requires_import"]:
        if kwargs[key] is not None:
            kwargs[key] = pydoc.locate(kwargs[key])
    cls = pydoc.locate(arch["network_class_name"])
    assert cls is not None
    return cls(input_channels=n_in, num_classes=n_out, deep_supervision=deep_supervision, **kwargs)


PLAIN3 = ArchitectureSpec(
    network_class_name="PlainConvUNet",
    n_stages=3,
    features_per_stage=(4, 8, 16),
    kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)),
    strides=((1, 1, 1), (1, 2, 2), (2, 2, 2)),
    n_conv_per_stage=(2, 2, 2),
    n_conv_per_stage_decoder=(2, 2),
)
PLAIN4 = replace(
    PLAIN3,
    n_stages=4,
    features_per_stage=(4, 8, 16, 16),
    kernel_sizes=((3, 3, 3),) * 4,
    strides=((1, 1, 1), (2, 2, 2), (2, 2, 2), (1, 2, 2)),
    n_conv_per_stage=(1, 2, 2, 3),
    n_conv_per_stage_decoder=(1, 2, 1),
)
RESENC = ArchitectureSpec(
    network_class_name="ResidualEncoderUNet",
    n_stages=3,
    features_per_stage=(4, 8, 16),
    kernel_sizes=((3, 3, 3),) * 3,
    strides=((1, 1, 1), (2, 2, 2), (2, 1, 2)),
    n_blocks_per_stage=(1, 2, 2),
    n_conv_per_stage_decoder=(1, 1),
)
VARIANTS = {
    "plain3": PLAIN3,
    "plain4": PLAIN4,
    "resenc": RESENC,
    "resenc_stem_relu": replace(RESENC, stem_channels=6, nonlin="ReLU"),
    "plain_bn_dropout_nonlin_first": replace(
        PLAIN3, norm="BatchNorm", dropout_p=0.2, nonlin_first=True, nonlin_negative_slope=0.1
    ),
    "plain_2d": replace(
        PLAIN3,
        conv_dim=2,
        kernel_sizes=((3, 3),) * 3,
        strides=((1, 1), (2, 2), (2, 2)),
    ),
}


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("deep_supervision", [False, True])
def test_state_dict_and_outputs_equal_dynamic_network_architectures(
    name: str, deep_supervision: bool
) -> None:
    spec = VARIANTS[name]
    torch.manual_seed(0)
    theirs = _theirs(spec, 2, 3, deep_supervision)
    theirs.apply(theirs.initialize)
    torch.manual_seed(0)
    ours = build_network(spec, 2, 3, deep_supervision=deep_supervision)
    initialize_he(ours)
    sd_theirs, sd_ours = theirs.state_dict(), ours.state_dict()
    assert list(sd_ours) == list(sd_theirs)  # same keys (aliases included), same order
    assert all(sd_ours[k].shape == v.shape for k, v in sd_theirs.items())
    assert all(torch.equal(sd_ours[k], v) for k, v in sd_theirs.items())  # same random init
    assert any(".all_modules." in k for k in sd_ours) and any(
        "decoder.encoder." in k for k in sd_ours
    )
    # perturb norms so that the comparison does not rely on their default affine values
    with torch.no_grad():
        for v in sd_theirs.values():
            if v.is_floating_point():
                v.add_(0.01 * torch.randn_like(v))
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    theirs.eval()
    shape = (2, 2, 8, 16, 24) if spec.conv_dim == 3 else (2, 2, 16, 24)
    x = torch.randn(*shape)
    with torch.no_grad():
        a, b = theirs(x), ours(x)
    if deep_supervision:
        assert isinstance(b, list) and len(b) == spec.n_stages - 1
        assert b[0].shape[2:] == x.shape[2:]  # highest resolution first
        for ta, tb in zip(a, b, strict=True):
            assert torch.equal(ta, tb)
    else:
        assert b.shape == (2, 3, *x.shape[2:])
        assert torch.equal(a, b)
    assert sd_ours[input_conv_key(spec)].shape[1] == 2


def test_deep_supervision_switch() -> None:
    net = build_network(PLAIN3, 1, 2, deep_supervision=True)
    net.eval()
    x = torch.randn(1, 1, 4, 8, 8)
    with torch.no_grad():
        outs = net(x)
        net.deep_supervision = False
        single = net(x)
    assert torch.equal(outs[0], single)
    assert [o.shape[2:] for o in outs] == [torch.Size([4, 8, 8]), torch.Size([4, 4, 4])]


def test_resenc_init_zeroes_last_norm() -> None:
    net = build_network(RESENC, 1, 2)
    initialize_he(net)
    sd = net.state_dict()
    assert torch.count_nonzero(sd["encoder.stages.1.blocks.0.conv2.norm.weight"]) == 0
    assert torch.count_nonzero(sd["encoder.stages.1.blocks.0.conv1.norm.weight"]) > 0
