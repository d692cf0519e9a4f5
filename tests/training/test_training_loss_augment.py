"""Loss parity with nnunetv2, augmentation (no mirroring) and patch sampling."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from totalseg.models.plan import IntensityProperties
from totalseg.training.augment import augment_intensity, sample_patch
from totalseg.training.cache import build_cache, load_cached_case
from totalseg.training.config import AugmentationConfig
from totalseg.training.dataset import read_dataset
from totalseg.training.loss import DeepSupervisionLoss, DiceCELoss, deep_supervision_weights
from totalseg.training.sampler import CaseStore, CTNormalizer, PatchSampler, downsample_targets


@pytest.mark.parametrize("batch_dice", [False, True])
def test_loss_matches_nnunetv2(batch_dice: bool) -> None:
    compound = pytest.importorskip("nnunetv2.training.loss.compound_losses")
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    g = torch.Generator().manual_seed(0)
    outputs = [
        torch.randn(2, 5, 8, 6, 4, generator=g),
        torch.randn(2, 5, 4, 3, 2, generator=g),
        torch.randn(2, 5, 2, 2, 1, generator=g),
    ]
    targets = [torch.randint(0, 5, (2, 1, *o.shape[2:]), generator=g) for o in outputs]
    targets[0][:, :, :2] = 0
    weights = deep_supervision_weights(3)
    ref = DeepSupervisionWrapper(
        compound.DC_and_CE_loss(
            {"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": False},
            {},
            weight_ce=1,
            weight_dice=1,
            dice_class=MemoryEfficientSoftDiceLoss,
        ),
        weights,
    )
    ours = DeepSupervisionLoss(DiceCELoss(batch_dice=batch_dice), weights)
    mine = [o.clone().requires_grad_(True) for o in outputs]
    theirs = [o.clone().requires_grad_(True) for o in outputs]
    loss_ours, loss_ref = ours(mine, targets), ref(theirs, targets)
    assert torch.allclose(loss_ours, loss_ref, atol=1e-6)
    loss_ours.backward()
    loss_ref.backward()
    for a, b, w in zip(mine, theirs, weights, strict=True):
        if w == 0:  # the lowest output takes no part in the loss
            assert a.grad is None and b.grad is None
        else:
            assert torch.allclose(a.grad, b.grad, atol=1e-7)


def test_deep_supervision_weights_like_nnunet() -> None:
    w = deep_supervision_weights(5)
    raw = np.array([1, 0.5, 0.25, 0.125, 0.0])
    assert np.allclose(w, raw / raw.sum()) and w[-1] == 0
    assert deep_supervision_weights(1) == [1.0]


def test_augmentation_never_mirrors() -> None:
    names = [f.name for f in dataclasses.fields(AugmentationConfig)]
    assert not [n for n in names if "mirror" in n or "flip" in n]
    # a strongly lateralised volume stays lateralised under every spatial augmentation
    image = np.zeros((24, 24, 24), np.float32)
    image[:, :, :8] = 1.0  # "left" third along the last axis
    labels = (image > 0).astype(np.uint8)
    config = AugmentationConfig(p_rotation=1.0, rotation_deg=15.0, p_scaling=1.0, p_elastic=1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        _img, lab = sample_patch(
            image,
            labels,
            center=(12, 12, 12),
            patch=(16, 16, 16),
            config=config,
            rng=rng,
            normalize=lambda v: v,
        )
        assert lab[:, :, :4].float().mean() > lab[:, :, -4:].float().mean()


def test_spatial_identity_equals_crop_and_intensity_is_reproducible() -> None:
    rng0 = np.random.default_rng(5)
    image = rng0.normal(0, 100, (20, 22, 18)).astype(np.int16)
    labels = (image > 80).astype(np.uint8)
    identity = AugmentationConfig(p_rotation=0.0, p_scaling=1.0, scaling=(1.0, 1.0))
    for center in [(10, 11, 9), (1, 2, 17), (19, 0, 0)]:
        kwargs = {"center": center, "patch": (8, 12, 10), "normalize": lambda v: v / 100}
        a, la = sample_patch(image, labels, config=identity, rng=np.random.default_rng(0), **kwargs)
        b, lb = sample_patch(
            image, labels, config=AugmentationConfig.none(), rng=np.random.default_rng(0), **kwargs
        )
        assert torch.equal(la, lb) and torch.allclose(a, b, atol=1e-5)
    full = AugmentationConfig(
        p_noise=1,
        p_blur=1,
        p_brightness=1,
        p_contrast=1,
        p_low_resolution=1,
        p_gamma_inverted=1,
        p_gamma=1,
    )
    x = torch.from_numpy(image[:8, :8, :8].astype(np.float32) / 100)
    y1 = augment_intensity(x, full, np.random.default_rng(1))
    y2 = augment_intensity(x, full, np.random.default_rng(1))
    assert torch.equal(y1, y2) and y1.shape == x.shape and not torch.equal(y1, x)
    assert torch.equal(augment_intensity(x, AugmentationConfig.none(), np.random.default_rng(1)), x)


def test_sampler_alignment_oversampling_and_determinism(public_dataset: Path, cache_dir: Path):
    ds = read_dataset(public_dataset)
    cases = build_cache(ds, classes=dict(ds.label_names), spacing_mm=1.5, cache_dir=cache_dir)
    train = [c for c in cases if c.split == "train"]
    stats = IntensityProperties(0.0, 100.0, 0.0, -2000.0, 4000.0, -2000.0, 4000.0)
    sampler = PatchSampler(
        CaseStore(train),
        patch_size=(8, 8, 8),
        batch_size=3,
        normalizer=CTNormalizer(stats),
        augmentation=AugmentationConfig.none(),
        oversample_foreground=0.33,
    )
    assert [sampler.forced_foreground(i) for i in range(3)] == [False, False, True]
    for _ in range(10):
        x, y = sampler.sample(np.random.default_rng(_))
        assert x.shape == (3, 1, 8, 8, 8) and y.dtype == torch.int64
        assert (y[2] > 0).any()  # forced foreground
        for c, hu in ((1, 60.0), (3, 120.0), (2, 200.0)):  # spleen, liver, kidney_left
            if (y == c).any():
                assert abs(float(x[y == c].mean()) * 100 - hu) < 25
    a = sampler.sample(np.random.default_rng(7))
    b = sampler.sample(np.random.default_rng(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    full = load_cached_case(train[0])["labels"]
    assert full.shape == train[0].shape


def test_downsampled_targets() -> None:
    y = torch.randint(0, 4, (2, 1, 16, 16, 8))
    out = downsample_targets(y, ((1, 1, 1), (2, 2, 2), (2, 2, 1)), 3)
    assert [tuple(t.shape[2:]) for t in out] == [(16, 16, 8), (8, 8, 4), (4, 4, 4)]
    assert torch.equal(out[1], y[:, :, 1::2, 1::2, 1::2])  # nearest-exact, like nnU-Net v2
