"""Batches of training patches: case choice, foreground oversampling, augmentation.

nnU-Net's sampling: every batch element picks a case uniformly (with replacement); the last
``round(B * 0.33)`` elements of a batch (nnU-Net's rule ``i >= round(B * (1 - p))``) are centred
on a random voxel of a random class present in the case (from the cache's class locations), the
others on a uniformly random position such that the patch lies inside the image when it fits.
Every random draw comes from the numpy Generator passed in, so a batch sequence is reproducible
from the generator's state (which the trainer checkpoints).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from totalseg.errors import InputError
from totalseg.models.plan import IntensityProperties
from totalseg.preprocess.normalize import normalize_channel
from totalseg.training.augment import AugmentationConfig, augment_intensity, sample_patch
from totalseg.training.cache import CachedCase, load_cached_case

__all__ = ["Batch", "CTNormalizer", "CaseStore", "PatchSampler", "downsample_targets"]

Batch = tuple[torch.Tensor, torch.Tensor]


class CTNormalizer:
    """nnU-Net's CTNormalization: clip to the 0.5/99.5 percentiles, minus mean, over std."""

    def __init__(self, stats: IntensityProperties) -> None:
        self.stats = stats

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return normalize_channel(x, scheme="CTNormalization", stats=self.stats)


class CaseStore:
    """Decompressed cases, kept in memory up to `max_bytes` (least recently used dropped)."""

    def __init__(self, cases: Sequence[CachedCase], *, max_bytes: float = 4e9) -> None:
        self.cases = list(cases)
        self.max_bytes = max_bytes
        self._loaded: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.cases)

    def get(self, index: int) -> dict[str, np.ndarray]:
        if index in self._loaded:
            self._loaded.move_to_end(index)
            return self._loaded[index]
        arrays = load_cached_case(self.cases[index])
        self._loaded[index] = arrays
        while len(self._loaded) > 1 and self._bytes() > self.max_bytes:
            self._loaded.popitem(last=False)
        return arrays

    def _bytes(self) -> int:
        return sum(a.nbytes for d in self._loaded.values() for a in d.values())


def _random_center(
    shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator
) -> list[int]:
    center = []
    for s, p in zip(shape, patch, strict=True):
        lo, hi = min(0, s - p), max(0, s - p)
        center.append(int(rng.integers(lo, hi + 1)) + p // 2)
    return center


def _foreground_center(
    locations: np.ndarray, shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator
) -> list[int] | None:
    if len(locations) == 0:
        return None
    classes = np.unique(locations[:, 0])
    chosen = classes[int(rng.integers(len(classes)))]
    rows = locations[locations[:, 0] == chosen]
    voxel = rows[int(rng.integers(len(rows)))][1:]
    center = []
    for v, s, p in zip(voxel, shape, patch, strict=True):
        lo, hi = min(0, s - p), max(0, s - p)
        center.append(int(np.clip(int(v) - p // 2, lo, hi)) + p // 2)
    return center


def downsample_targets(
    labels: torch.Tensor, strides: Sequence[Sequence[int]], n_outputs: int
) -> list[torch.Tensor]:
    """Targets (B, 1, ...) for each deep-supervision output, highest resolution first.

    Output k has the resolution of encoder stage k ('nearest-exact', like nnU-Net v2).
    """
    out = [labels]
    size = list(labels.shape[2:])
    for k in range(1, n_outputs):
        size = [s // st for s, st in zip(size, strides[k], strict=True)]
        down = F.interpolate(labels.float(), size=size, mode="nearest-exact")
        out.append(down.to(labels.dtype))
    return out


class PatchSampler:
    """Draws augmented, normalised batches (image (B,1,*P) float32, labels (B,1,*P) int64)."""

    def __init__(
        self,
        store: CaseStore,
        *,
        patch_size: Sequence[int],
        batch_size: int,
        normalizer: CTNormalizer,
        augmentation: AugmentationConfig,
        oversample_foreground: float = 0.33,
    ) -> None:
        if len(store) == 0:
            raise InputError("Expected at least one case to sample patches from, got none.")
        self.store, self.patch = store, tuple(int(p) for p in patch_size)
        self.batch_size, self.normalizer = int(batch_size), normalizer
        self.augmentation, self.oversample = augmentation, float(oversample_foreground)

    def forced_foreground(self, index: int) -> bool:
        return not index < round(self.batch_size * (1 - self.oversample))

    def sample(self, rng: np.random.Generator) -> Batch:
        images, labels = [], []
        for i in range(self.batch_size):
            img, lab = self.sample_one(rng, foreground=self.forced_foreground(i))
            images.append(img)
            labels.append(lab)
        return torch.stack(images)[:, None], torch.stack(labels)[:, None]

    def sample_one(self, rng: np.random.Generator, *, foreground: bool) -> Batch:
        case = self.store.get(int(rng.integers(len(self.store))))
        image, labels = case["image"], case["labels"]
        center = None
        if foreground:
            center = _foreground_center(case["class_locations"], image.shape, self.patch, rng)
        if center is None:
            center = _random_center(image.shape, self.patch, rng)
        img, lab = sample_patch(
            image,
            labels,
            center=center,
            patch=self.patch,
            config=self.augmentation,
            rng=rng,
            normalize=self.normalizer,
        )
        return augment_intensity(img, self.augmentation, rng), lab
