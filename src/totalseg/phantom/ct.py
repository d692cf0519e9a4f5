"""CT simulation on top of the painted HU: texture, lung vessels, bowel gas, blur, noise."""

from __future__ import annotations

import zlib

import numpy as np
from scipy import ndimage

from totalseg.phantom.params import SubjectParams
from totalseg.phantom.tissues import LABEL_NAMES, TissueHU, label_id

__all__ = ["finish_ct", "smooth_field"]

_F = np.float32
#: structure -> (gas volume fraction, softness of the gas edge in field units)
_GAS = {"colon": (0.45, 0.12), "stomach": (0.07, 0.08), "duodenum": (0.08, 0.1),
        "small_bowel": (0.01, 0.1)}  # fmt: skip


def _lerp_axis(a: np.ndarray, axis: int, n: int, step: float) -> np.ndarray:
    """Linear interpolation of `a` at positions i * step (in its own index units) along axis."""
    pos = np.arange(n, dtype=np.float64) * step
    i0 = np.minimum(pos.astype(np.int64), a.shape[axis] - 2)
    w = (pos - i0).astype(np.float32)
    if axis == 0:  # slab by slab: no full-size temporaries, cache friendly
        out = np.empty((n, *a.shape[1:]), dtype=np.float32)
        for i in range(n):
            lo, hi = a[i0[i]], a[i0[i] + 1]
            np.subtract(hi, lo, out=out[i])
            out[i] *= w[i]
            out[i] += lo
        return out
    shape = [1, 1, 1]
    shape[axis] = n
    lo = np.take(a, i0, axis=axis)
    hi = np.take(a, i0 + 1, axis=axis)
    hi -= lo
    hi *= w.reshape(shape)
    lo += hi
    return lo


def smooth_field(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, ...],
    *,
    corr_mm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Gaussian random field with unit sd and correlation length ~corr_mm, on the grid.

    Drawn on a grid of corr_mm / 2 (or the output grid where that is finer), smoothed, and
    interpolated linearly onto the output grid.
    """
    coarse_mm = corr_mm / 2.0
    if coarse_mm <= min(spacing_mm):
        field = rng.standard_normal(shape, dtype=np.float32)
        field = ndimage.gaussian_filter(field, [coarse_mm / s for s in spacing_mm], truncate=3.0)
        field /= max(float(field[::3, ::3, ::3].std()), 1e-6)
        return field
    steps = [s / coarse_mm for s in spacing_mm]
    cshape = [int(np.ceil(n * st)) + 3 for n, st in zip(shape, steps, strict=False)]
    coarse = rng.standard_normal(cshape, dtype=np.float32)
    coarse = ndimage.gaussian_filter(coarse, 1.0, mode="wrap")
    coarse /= max(float(coarse.std()), 1e-6)
    out = coarse
    for axis in (2, 1, 0):  # the last, biggest step gathers whole contiguous slabs
        out = _lerp_axis(out, axis, shape[axis], steps[axis])
    return out


def _lut(tissues: dict[str, TissueHU]) -> np.ndarray:
    lut = np.zeros(256, dtype=np.float32)
    for i, name in enumerate(LABEL_NAMES):
        lut[i + 1] = tissues[name].texture_hu
    return lut


def _bbox(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    if not mask.any():
        return None
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return out[0], out[1], out[2]


def _add_lung_vessels(
    hu: np.ndarray, labels: np.ndarray, spacing_mm: tuple[float, ...], rng: np.random.Generator
) -> None:
    """Bright branching-like filaments in the lungs (zero crossings of a smooth field)."""
    lung_ids = [label_id(n) for n in LABEL_NAMES if n.startswith("lung_")]
    lungs = (labels >= min(lung_ids)) & (labels <= max(lung_ids))
    box = _bbox(lungs)
    if box is None:
        return
    sub = lungs[box]
    shape = (sub.shape[0], sub.shape[1], sub.shape[2])
    fine = smooth_field(shape, spacing_mm, corr_mm=5.0, rng=rng)[sub]
    gate = smooth_field(shape, spacing_mm, corr_mm=12.0, rng=rng)[sub]
    vessels = np.exp(-((fine / _F(0.1)) ** 2)) * (gate > -0.2)
    region = hu[box]
    region[sub] += _F(650.0) * vessels.astype(np.float32)


def _add_gas(hu: np.ndarray, labels: np.ndarray, field: np.ndarray) -> None:
    """Gas pockets in the bowel and stomach where a smooth field is highest."""
    for name, (fraction, softness) in _GAS.items():
        box = _bbox(labels == label_id(name))
        if box is None:
            continue
        mask = labels[box] == label_id(name)
        t = field[box][mask]
        threshold = _F(np.quantile(t, 1.0 - fraction))
        gas = (1.0 / (1.0 + np.exp(-(t - threshold) / _F(softness)))).astype(np.float32)
        region = hu[box]
        region[mask] += gas * (_F(-1000.0) - region[mask])


def _noise_gain(sigma_vox: np.ndarray) -> float:
    """sd of white unit noise after the separable Gaussian filter of these sigmas."""
    gain = 1.0
    for s in sigma_vox:
        r = int(3.0 * s + 0.5)
        x = np.arange(-r, r + 1, dtype=np.float64)
        w = np.exp(-0.5 * (x / max(s, 1e-6)) ** 2)
        w /= w.sum()
        gain *= float(np.sqrt((w**2).sum()))
    return gain


def finish_ct(
    hu: np.ndarray,
    labels: np.ndarray,
    tissues: dict[str, TissueHU],
    params: SubjectParams,
    spacing_mm: tuple[float, float, float],
) -> np.ndarray:
    """Texture, lung vessels, bowel gas, scanner blur and noise (in place); returns int16 HU.

    Noise is added before the blur, so the point spread function also correlates it (as the
    reconstruction kernel does); its amplitude is set so that the final sd is `noise_hu`.
    """
    rng = np.random.default_rng([int(params.seed), zlib.crc32(b"ct")])
    field = smooth_field(labels.shape, spacing_mm, corr_mm=8.0, rng=rng)
    hu += _lut(tissues)[labels] * field
    _add_gas(hu, labels, field)
    del field
    _add_lung_vessels(hu, labels, spacing_mm, rng)
    sp = np.asarray(spacing_mm)
    psf = params.psf_mm
    sigma = np.array([psf / sp[0], psf / sp[1], np.hypot(psf, 0.4 * sp[2]) / sp[2]])
    if params.noise_hu > 0:
        amp = params.noise_hu / _noise_gain(sigma) * np.sqrt(3.0)
        noise = rng.random(labels.shape, dtype=np.float32)
        noise -= _F(0.5)
        noise *= _F(2.0 * amp)
        hu += noise
        del noise
    hu = ndimage.gaussian_filter(hu, sigma, truncate=3.0)
    np.clip(hu, -1024, 3071, out=hu)
    return np.rint(hu).astype(np.int16)
