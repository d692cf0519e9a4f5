from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from totalseg.errors import GeometryError
from totalseg.image import Image, LabelMap
from totalseg.preprocess.orientation import restore, to_canonical


def _world_of_voxel(affine, ijk):
    return affine[:3, :3] @ np.asarray(ijk, float) + affine[:3, 3]


@pytest.mark.parametrize("kind", [Image, LabelMap])
def test_restore_is_exact_inverse(any_affine, kind):
    rng = np.random.default_rng(1)
    array = rng.integers(0, 50, size=(23, 31, 17)).astype(np.int16 if kind is Image else np.uint8)
    vol = kind(array, any_affine)
    canonical, record = to_canonical(vol)
    back = restore(canonical, record)
    assert type(back) is kind
    assert back.array.dtype == array.dtype
    np.testing.assert_array_equal(back.array, array)
    assert np.array_equal(back.affine, any_affine)  # bit for bit, not allclose


def test_canonical_matches_nibabel(any_affine):
    array = np.arange(23 * 31 * 17, dtype=np.float32).reshape(23, 31, 17)
    canonical, _ = to_canonical(Image(array, any_affine))
    ref = nib.as_closest_canonical(nib.Nifti1Image(array, any_affine))
    np.testing.assert_array_equal(canonical.array, np.asanyarray(ref.dataobj))
    np.testing.assert_allclose(canonical.affine, ref.affine, atol=1e-9)


def test_canonical_keeps_world_position_of_every_voxel(any_affine):
    array = np.zeros((23, 31, 17), np.uint8)
    array[3, 29, 2] = 7  # one marked voxel, off-centre on every axis
    canonical, _ = to_canonical(LabelMap(array, any_affine))
    (i, j, k) = np.argwhere(np.asarray(canonical.array) == 7)[0]
    np.testing.assert_allclose(
        _world_of_voxel(canonical.affine, (i, j, k)),
        _world_of_voxel(any_affine, (3, 29, 2)),
        atol=1e-6,
    )


def test_canonical_orientation_codes(any_affine):
    canonical, record = to_canonical(Image(np.zeros((23, 31, 17), np.int16), any_affine))
    assert canonical.orientation == ("R", "A", "S")
    assert record.original_shape == (23, 31, 17)


def test_pir_permutes_shape(make_affine):
    canonical, record = to_canonical(Image(np.zeros((23, 31, 17), np.int16), make_affine("PIR")))
    assert canonical.shape == (17, 23, 31)
    assert not record.is_identity


def test_ras_is_returned_unchanged(make_affine):
    image = Image(np.zeros((23, 31, 17), np.int16), make_affine("RAS"))
    canonical, record = to_canonical(image)
    assert canonical is image and record.is_identity


def test_restore_rejects_wrong_shape(make_affine):
    _, record = to_canonical(Image(np.zeros((23, 31, 17), np.int16), make_affine("LPS")))
    with pytest.raises(GeometryError, match="restores to"):
        restore(Image(np.zeros((5, 5, 5), np.int16), np.eye(4)), record)
