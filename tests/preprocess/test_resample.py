"""Resampling: bit-exact with nnunetv2's resample_data_or_seg_to_shape; the reference's zoom."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from totalseg.errors import InputError
from totalseg.image import Image, LabelMap
from totalseg.preprocess.resample import (
    nnunet_new_shape,
    resample_to_shape,
    separate_z_axis,
    zoom_labels_to_grid,
    zoom_to_spacing,
)

nnunet_resampling = pytest.importorskip("nnunetv2.preprocessing.resampling.default_resampling")


@pytest.mark.parametrize(
    ("shape", "spacing", "target"),
    [
        ((17, 23, 31), (3.0, 0.8000000119, 0.8000000119), (1.5, 1.5, 1.5)),
        ((10, 12, 9), (1.0, 1.0, 1.0), (0.7, 1.3, 2.0)),
        ((7, 8, 9), (1.5, 1.5, 1.5), (1.5, 1.5, 1.5)),
        ((5, 5, 5), (1.0, 1.0, 1.0), (2.0, 2.0, 2.0)),  # 2.5 -> 2 (halves to even)
    ],
)
def test_new_shape_matches_nnunet(shape, spacing, target):
    expected = nnunet_resampling.compute_new_shape(shape, spacing, target)
    assert nnunet_new_shape(shape, spacing, target) == tuple(int(v) for v in expected)


@pytest.mark.parametrize(
    ("spacing", "target"),
    [
        ((3.5, 0.8, 0.8), (1.5, 1.5, 1.5)),  # current anisotropic: axis 0
        ((1.0, 1.0, 1.0), (1.0, 1.0, 4.0)),  # target anisotropic: axis 2
        ((4.0, 4.0, 1.0), (1.0, 1.0, 1.0)),  # two axes share the max: off
        ((1.0, 1.0, 1.0), (1.5, 1.5, 1.5)),  # isotropic: off
    ],
)
def test_separate_z_decision_matches_nnunet(spacing, target):
    do, axis = nnunet_resampling.determine_do_sep_z_and_axis(None, spacing, target)
    assert separate_z_axis(spacing, target) == (axis if do else None)


def _random(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 100, size=shape) + rng.integers(-5, 5, size=shape)).astype(dtype)


@pytest.mark.parametrize(
    ("shape", "new_shape", "spacing", "target", "order", "dtype"),
    [
        ((1, 11, 13, 9), (15, 10, 12), (1.0, 1.0, 1.0), (0.7, 1.3, 0.75), 3, np.float32),
        ((2, 6, 20, 18), (14, 11, 10), (3.5, 0.8, 0.8), (1.5, 1.5, 1.5), 3, np.float32),
        ((1, 9, 12, 10), (9, 8, 7), (3.5, 0.8, 0.8), (3.5, 1.2, 1.2), 3, np.float32),
        ((3, 12, 10, 9), (7, 13, 11), (1.5, 1.5, 1.5), (2.6, 1.2, 1.2), 1, np.float16),
        ((2, 8, 9, 10), (8, 12, 25), (1.0, 1.0, 4.0), (1.0, 0.75, 1.6), 1, np.float16),
    ],
)
def test_resample_to_shape_is_bit_exact_with_nnunet(
    shape, new_shape, spacing, target, order, dtype
):
    data = _random(shape, dtype)
    expected = nnunet_resampling.resample_data_or_seg_to_shape(
        data,
        new_shape,
        spacing,
        target,
        is_seg=False,
        order=order,
        order_z=0,
        force_separate_z=None,
    )
    got = resample_to_shape(
        data, new_shape, spacing=spacing, new_spacing=target, order=order, force_separate_z=None
    )
    assert got.dtype == expected.dtype == dtype
    np.testing.assert_array_equal(got, expected)


def test_resample_to_shape_unchanged_shape_returns_input():
    data = _random((1, 4, 5, 6), np.float32)
    assert resample_to_shape(data, (4, 5, 6), spacing=(1, 1, 1), new_spacing=(1, 1, 1)) is data


def test_resample_to_shape_rejects_wrong_rank():
    with pytest.raises(InputError, match=r"Expected a \(C, \.\.\.\) array with 3 spatial axes"):
        resample_to_shape(np.zeros((4, 5, 6)), (4, 5, 6), spacing=(1,) * 3, new_spacing=(1,) * 3)


def test_zoom_to_spacing_follows_reference_change_spacing(make_affine):
    affine = make_affine("RAS", spacing_mm=(0.8, 1.2, 3.0))
    rng = np.random.default_rng(1)
    array = rng.integers(-1000, 1500, size=(23, 31, 17)).astype(np.int16)
    out, change = zoom_to_spacing(Image(array, affine), 1.5, order=1)
    zoom = np.array([0.8, 1.2, 3.0], dtype=np.float32).astype(np.float64) / 1.5
    expected = ndimage.zoom(array.astype(np.float64), zoom, order=1, mode="nearest")
    np.testing.assert_array_equal(out.array, expected.astype(np.int32))
    assert out.dtype == np.int32 and change.applied
    np.testing.assert_allclose(out.spacing_mm, (1.5, 1.5, 1.5), rtol=1e-6)
    np.testing.assert_allclose(out.affine[:3, 3], affine[:3, 3])


def test_zoom_to_spacing_skips_matching_spacing(make_affine):
    image = Image(
        np.arange(60, dtype=np.float32).reshape(3, 4, 5) + 0.5, make_affine("LPS", (1.5,) * 3)
    )
    out, change = zoom_to_spacing(image, 1.5)
    assert out is image and not change.applied


def test_zoom_to_spacing_float_output_keeps_fractions(make_affine):
    image = Image(np.full((6, 6, 6), 0.25, dtype=np.float32), make_affine("RAS", (1.0,) * 3))
    out, _ = zoom_to_spacing(image, 2.0, truncate_to_int32=False)
    assert out.dtype == np.float32 and np.allclose(out.array, 0.25)


def test_zoom_to_spacing_rejects_bad_spacing(make_affine):
    image = Image(np.zeros((3, 3, 3)), make_affine("RAS", (1.0,) * 3))
    with pytest.raises(InputError, match="Expected positive target spacings"):
        zoom_to_spacing(image, 0.0)


def test_zoom_labels_to_grid_lands_on_exact_shape_and_keeps_label_set(make_affine):
    rng = np.random.default_rng(2)
    labels = LabelMap(
        rng.choice([0, 3, 7], size=(12, 9, 20)).astype(np.uint8),
        make_affine("RAS", (1.5,) * 3),
        {3: "a", 7: "b"},
    )
    target_affine = make_affine("RAS", (0.8, 1.1, 2.9))
    out = zoom_labels_to_grid(labels, (23, 31, 17), target_affine)
    assert out.shape == (23, 31, 17)
    assert set(np.unique(out.array)) <= {0, 3, 7}
    np.testing.assert_array_equal(out.affine, target_affine)
    expected = ndimage.zoom(
        labels.array.astype(np.float64),
        np.array((23, 31, 17)) / (12, 9, 20),
        order=0,
        mode="nearest",
    ).astype(np.uint8)
    np.testing.assert_array_equal(out.array, expected)
    assert dict(out.labels) == {3: "a", 7: "b"}
