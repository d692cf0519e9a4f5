"""Normalisation and nonzero cropping: bit-exact with nnunetv2's classes and crop_to_nonzero."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from totalseg.errors import ConfigError, InputError
from totalseg.preprocess.crop import CropBox, crop_to_box, filled_nonzero_mask, nonzero_box, uncrop
from totalseg.preprocess.normalize import normalize_channel

schemes = pytest.importorskip("nnunetv2.preprocessing.normalization.default_normalization_schemes")
cropping = pytest.importorskip("nnunetv2.preprocessing.cropping.cropping")

PROPS = {
    "mean": 87.3,
    "std": 171.1,
    "median": 60.0,
    "min": -1024.0,
    "max": 3071.0,
    "percentile_00_5": -968.7,
    "percentile_99_5": 1243.1,
}


def _ct(seed=0, shape=(9, 11, 7)):
    return np.random.default_rng(seed).normal(0, 600, size=shape).astype(np.float32)


def test_ct_normalization_bit_exact():
    image = _ct()
    expected = schemes.CTNormalization(False, PROPS).run(image.copy())
    got = normalize_channel(image.copy(), scheme="CTNormalization", stats=SimpleNamespace(**PROPS))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("use_mask", [False, True])
def test_zscore_bit_exact(use_mask):
    image = _ct(1)
    image[:2] = 0
    seg = np.where(image != 0, 0, -1).astype(np.int8)
    expected = schemes.ZScoreNormalization(use_mask, {}).run(image.copy(), seg)
    got = normalize_channel(
        image.copy(),
        scheme="ZScoreNormalization",
        use_mask_for_norm=use_mask,
        nonzero_mask=seg >= 0,
    )
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("NoNormalization", "NoNormalization"),
        ("RescaleTo01Normalization", "RescaleTo01Normalization"),
    ],
)
def test_other_schemes_bit_exact(name, cls):
    image = _ct(2)
    expected = getattr(schemes, cls)(False, {}).run(image.copy())
    np.testing.assert_array_equal(normalize_channel(image.copy(), scheme=name), expected)


def test_rgb_scheme_and_its_range_check():
    image = np.arange(0, 256, dtype=np.float32).reshape(4, 8, 8)
    expected = schemes.RGBTo01Normalization(False, {}).run(image.copy())
    np.testing.assert_array_equal(
        normalize_channel(image.copy(), scheme="RGBTo01Normalization"), expected
    )
    with pytest.raises(InputError, match=r"Expected RGB values in \[0, 255\]"):
        normalize_channel(image - 1, scheme="RGBTo01Normalization")


def test_unknown_scheme_and_missing_stats_are_errors():
    with pytest.raises(ConfigError, match="Expected a normalisation scheme in"):
        normalize_channel(_ct(), scheme="MyCustomNormalization")
    with pytest.raises(ConfigError, match="Expected foreground intensity properties"):
        normalize_channel(_ct(), scheme="CTNormalization", stats=None)


def test_nonzero_crop_matches_nnunet_with_filled_holes():
    data = np.zeros((2, 12, 14, 10), dtype=np.float32)
    data[0, 2:9, 3:11, 1:8] = 5.0
    data[0, 4:6, 5:7, 3:5] = 0.0  # an enclosed hole: filled, still inside the box
    data[1, 10, 12, 9] = -1.0  # second channel extends the box
    cropped, _, bbox = cropping.crop_to_nonzero(data.copy())
    box = nonzero_box(data)
    assert [list(p) for p in zip(box.starts, box.stops, strict=True)] == [list(b) for b in bbox]
    np.testing.assert_array_equal(crop_to_box(data, box), cropped)
    np.testing.assert_array_equal(filled_nonzero_mask(data), cropping.create_nonzero_mask(data))


def test_empty_mask_keeps_full_image_and_uncrop_round_trips():
    data = np.zeros((1, 4, 5, 6), dtype=np.float32)
    assert nonzero_box(data).is_full
    box = CropBox((1, 0, 2), (3, 5, 6), (4, 5, 6))
    inner = np.ones(box.shape, dtype=np.uint8)
    full = uncrop(inner, box)
    assert full.shape == (4, 5, 6) and int(full.sum()) == inner.size
    np.testing.assert_array_equal(crop_to_box(full, box), inner)


def test_crop_box_validation():
    with pytest.raises(InputError, match="Expected 0 <= start < stop <= size"):
        CropBox((0, 0, 0), (5, 5, 7), (5, 5, 6))
    with pytest.raises(InputError, match="whose last axes have shape"):
        crop_to_box(np.zeros((2, 3, 4)), CropBox((0, 0, 0), (1, 1, 1), (5, 5, 5)))
