"""Intensity normalisation schemes of nnU-Net v2, bit for bit (float32 throughout).

CTNormalization clips to the foreground 0.5/99.5 percentiles, subtracts the foreground mean and
divides by max(std, 1e-8), in that order, in float32 with the constants rounded to float32
(numpy's weak-scalar rules). The parameters come from the model's plans.json, never from code.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from totalseg.errors import ConfigError, InputError

__all__ = ["SCHEMES", "IntensityStats", "normalize_channel"]

_EPS = 1e-8


class IntensityStats(Protocol):
    """The per-channel foreground statistics stored in plans.json (what CT normalisation needs)."""

    @property
    def mean(self) -> float: ...

    @property
    def std(self) -> float: ...

    @property
    def percentile_00_5(self) -> float: ...

    @property
    def percentile_99_5(self) -> float: ...


SCHEMES = (
    "CTNormalization",
    "ZScoreNormalization",
    "NoNormalization",
    "RescaleTo01Normalization",
    "RGBTo01Normalization",
)


def _ct(image: np.ndarray, stats: IntensityStats | None) -> np.ndarray:
    if stats is None:
        raise ConfigError(
            "Expected foreground intensity properties for CTNormalization, got none; the "
            "plans.json lacks 'foreground_intensity_properties_per_channel'."
        )
    np.clip(image, float(stats.percentile_00_5), float(stats.percentile_99_5), out=image)
    image -= float(stats.mean)
    image /= max(float(stats.std), _EPS)
    return image


def _zscore(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is not None:
        mean = image[mask].mean()
        std = image[mask].std()
        image[mask] = (image[mask] - mean) / (max(std, _EPS))
        return image
    mean = image.mean()
    std = image.std()
    image -= mean
    image /= max(std, _EPS)
    return image


def _rgb01(image: np.ndarray) -> np.ndarray:
    if image.min() < 0 or image.max() > 255:
        raise InputError(
            f"Expected RGB values in [0, 255] for RGBTo01Normalization, got range "
            f"[{float(image.min())}, {float(image.max())}]."
        )
    image /= 255.0
    return image


def normalize_channel(
    image: np.ndarray,
    *,
    scheme: str,
    stats: IntensityStats | None = None,
    use_mask_for_norm: bool = False,
    nonzero_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Normalise one channel (a float32 copy is made unless it already is float32, then in place).

    `nonzero_mask` (nnU-Net's `seg >= 0`: the filled nonzero mask of the crop) is used only by
    ZScoreNormalization with `use_mask_for_norm`.
    """
    image = image.astype(np.float32, copy=False)
    if scheme == "CTNormalization":
        return _ct(image, stats)
    if scheme == "ZScoreNormalization":
        if use_mask_for_norm and nonzero_mask is None:
            raise ConfigError(
                "Expected a nonzero mask for ZScoreNormalization with a mask, got none."
            )
        return _zscore(image, nonzero_mask if use_mask_for_norm else None)
    if scheme == "NoNormalization":
        return image
    if scheme == "RescaleTo01Normalization":
        image -= image.min()
        image /= np.clip(image.max(), a_min=_EPS, a_max=None)
        return image
    if scheme == "RGBTo01Normalization":
        return _rgb01(image)
    raise ConfigError(
        f"Expected a normalisation scheme in {', '.join(SCHEMES)}, got {scheme!r}; "
        "custom nnU-Net normalisation classes are not supported."
    )
