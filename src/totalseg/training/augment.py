"""Data augmentation of training patches (torch on CPU; all randomness from a numpy Generator).

nnU-Net v2's default pipeline and probabilities, in its order, **without any mirroring**:
flipping an axis of a CT would swap left/right structures (left-right axis) or produce
anatomy that never occurs (head-foot, front-back), so no flip is ever applied.

1. Spatial (per sample): rotation about each axis U(-30, 30) deg with p 0.2, isotropic scaling
   U(0.7, 1.4) with p 0.2, elastic deformation with `p_elastic` (nnU-Net default 0); image
   trilinear, labels nearest; outside the volume the image is 0 (normalised) and labels 0.
   `sample_patch` does this while cropping, straight from the whole case.
2. Intensity (`augment_intensity`, per sample): gaussian noise (p 0.1, variance U(0, 0.1)),
   gaussian blur (p 0.2, sigma U(0.5, 1) per axis), multiplicative brightness (p 0.15,
   U(0.75, 1.25)), contrast (p 0.15, U(0.75, 1.25), range preserved), simulated low resolution
   (p 0.25, zoom U(0.5, 1): nearest down, trilinear up), inverted gamma (p 0.1) and gamma (p 0.3),
   gamma U(0.7, 1.5), mean/std retained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from totalseg.training.config import AugmentationConfig

__all__ = ["AugmentationConfig", "augment_intensity", "sample_patch", "spatial_coordinates"]

Normalizer = Callable[[np.ndarray], np.ndarray]


def _rotation(angles: Sequence[float]) -> np.ndarray:
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _elastic(patch: Sequence[int], magnitude: float, rng: np.random.Generator) -> torch.Tensor:
    """A smooth displacement field (3, *patch) in voxels: random control grid, upsampled."""
    control = rng.uniform(-1.0, 1.0, size=(1, 3, 4, 4, 4)).astype(np.float32)
    scale = np.asarray(patch, dtype=np.float32).reshape(1, 3, 1, 1, 1) * magnitude
    field = torch.from_numpy(control * scale)
    return F.interpolate(field, size=tuple(patch), mode="trilinear", align_corners=True)[0]


def spatial_coordinates(
    patch: Sequence[int],
    center: Sequence[float],
    config: AugmentationConfig,
    rng: np.random.Generator,
) -> np.ndarray | None:
    """Voxel coordinates (3, *patch) to sample around `center`, or None for a plain crop."""
    rotate = rng.uniform() < config.p_rotation
    scale = rng.uniform() < config.p_scaling
    elastic = rng.uniform() < config.p_elastic
    if not (rotate or scale or elastic):
        return None
    matrix = np.eye(3)
    if rotate:
        r = math.radians(config.rotation_deg)
        matrix = _rotation(rng.uniform(-r, r, size=3).tolist()) @ matrix
    if scale:
        matrix = matrix * rng.uniform(*config.scaling)
    axes = [np.arange(p, dtype=np.float64) - (int(p) // 2) for p in patch]  # as the crop
    grid = np.stack(np.meshgrid(*axes, indexing="ij"))  # (3, *patch)
    coords = np.tensordot(matrix, grid, axes=1)
    if elastic:
        coords = coords + _elastic(patch, config.elastic_magnitude, rng).numpy()
    return coords + np.asarray(center, dtype=np.float64).reshape(3, 1, 1, 1)


Slices = tuple[slice, ...]


def _overlap(
    lower: Sequence[int], patch: Sequence[int], shape: Sequence[int]
) -> tuple[Slices, Slices] | None:
    """(source, destination) slices of a crop at `lower`; None when it misses the volume."""
    src, dst = [], []
    for lo, p, s in zip(lower, patch, shape, strict=True):
        a, b = max(int(lo), 0), min(int(lo) + int(p), int(s))
        if b <= a:
            return None
        src.append(slice(a, b))
        dst.append(slice(a - int(lo), b - int(lo)))
    return tuple(src), tuple(dst)


def _crop(
    volume: np.ndarray, lower: Sequence[int], patch: Sequence[int], normalize: Normalizer | None
) -> np.ndarray:
    """A crop padded with 0 (labels: background; images: 0 after normalisation)."""
    dtype = np.float32 if normalize is not None else volume.dtype
    out = np.zeros(tuple(patch), dtype=dtype)
    where = _overlap(lower, patch, volume.shape)
    if where is None:
        return out
    src, dst = where
    block = volume[src]
    out[dst] = normalize(np.array(block, dtype=np.float32)) if normalize is not None else block
    return out


def _grid_sample(block: np.ndarray, coords: np.ndarray, mode: str) -> torch.Tensor:
    """Sample `block` at voxel coords (3, *patch) (zeros outside), align_corners=True."""
    shape = np.asarray(block.shape, dtype=np.float64).reshape(3, 1, 1, 1)
    norm = 2.0 * coords / np.maximum(shape - 1, 1) - 1.0
    grid = torch.from_numpy(np.ascontiguousarray(norm[::-1].transpose(1, 2, 3, 0))).float()
    data = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))[None, None]
    return F.grid_sample(data, grid[None], mode=mode, padding_mode="zeros", align_corners=True)[
        0, 0
    ]


def sample_patch(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    center: Sequence[int],
    patch: Sequence[int],
    config: AugmentationConfig,
    rng: np.random.Generator,
    normalize: Normalizer,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A (normalised image, labels) patch centred on `center`, spatially augmented.

    `normalize` maps a float32 HU array (a copy) to network intensities; it is applied to the
    touched block only. Returns float32 and int64 tensors of shape `patch`.
    """
    coords = spatial_coordinates(patch, center, config, rng)
    if coords is None:
        lower = [int(c) - int(p) // 2 for c, p in zip(center, patch, strict=True)]
        img_crop = _crop(image, lower, patch, normalize)
        lab_crop = _crop(labels, lower, patch, None)
        return torch.from_numpy(img_crop), torch.from_numpy(lab_crop.astype(np.int64))
    flat = coords.reshape(3, -1)
    lo = np.clip(np.floor(flat.min(1)).astype(int) - 1, 0, None)
    hi = np.minimum(np.ceil(flat.max(1)).astype(int) + 2, np.asarray(image.shape))
    if np.any(hi <= lo):
        return torch.zeros(tuple(patch)), torch.zeros(tuple(patch), dtype=torch.int64)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    local = coords - lo.reshape(3, 1, 1, 1)
    block = normalize(np.array(image[box], dtype=np.float32))
    img = _grid_sample(block, local, "bilinear")
    lab = _grid_sample(np.asarray(labels[box]), local, "nearest").round().long()
    return img, lab


def _blur(x: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    """Separable gaussian blur of a (*patch) tensor, edges replicated."""
    out = x[None, None]
    for axis, sigma in enumerate(sigmas):
        radius = max(1, math.ceil(3 * sigma))
        t = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (t / sigma) ** 2)
        kernel = kernel / kernel.sum()
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = len(kernel)
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        out = F.conv3d(F.pad(out, pad, mode="replicate"), kernel.reshape(shape))
    return out[0, 0]


def _low_resolution(x: torch.Tensor, zoom: float) -> torch.Tensor:
    shape = x.shape
    small = [max(1, round(s * zoom)) for s in shape]
    down = F.interpolate(x[None, None], size=small, mode="nearest")
    return F.interpolate(down, size=tuple(shape), mode="trilinear", align_corners=False)[0, 0]


def _gamma(x: torch.Tensor, gamma: float, *, invert: bool) -> torch.Tensor:
    """nnU-Net's gamma: on [0, 1]-rescaled intensities, mean and std retained."""
    if invert:
        x = -x
    mean, std = x.mean(), x.std()
    lo, rng_ = x.min(), x.max() - x.min()
    y = torch.pow((x - lo) / (rng_ + 1e-7), gamma) * (rng_ + 1e-7) + lo
    y = (y - y.mean()) / (y.std() + 1e-8) * std + mean
    return -y if invert else y


def _draw_gamma(config: AugmentationConfig, rng: np.random.Generator) -> float:
    lo, hi = config.gamma
    if rng.uniform() < 0.5 and lo < 1:
        return float(rng.uniform(lo, 1.0))
    return float(rng.uniform(max(lo, 1.0), hi))


def augment_intensity(
    x: torch.Tensor, config: AugmentationConfig, rng: np.random.Generator
) -> torch.Tensor:
    """Intensity augmentation of one normalised image patch (see the module doc)."""
    if rng.uniform() < config.p_noise:
        var = rng.uniform(*config.noise_variance)
        noise = rng.normal(0.0, math.sqrt(var), size=tuple(x.shape)).astype(np.float32)
        x = x + torch.from_numpy(noise)
    if rng.uniform() < config.p_blur:
        x = _blur(x, rng.uniform(*config.blur_sigma, size=3).tolist())
    if rng.uniform() < config.p_brightness:
        x = x * float(rng.uniform(*config.brightness))
    if rng.uniform() < config.p_contrast:
        factor, mean = float(rng.uniform(*config.contrast)), x.mean()
        lo, hi = x.min(), x.max()
        x = ((x - mean) * factor + mean).clamp(lo, hi)
    if rng.uniform() < config.p_low_resolution:
        x = _low_resolution(x, float(rng.uniform(*config.low_resolution_zoom)))
    if rng.uniform() < config.p_gamma_inverted:
        x = _gamma(x, _draw_gamma(config, rng), invert=True)
    if rng.uniform() < config.p_gamma:
        x = _gamma(x, _draw_gamma(config, rng), invert=False)
    return x
