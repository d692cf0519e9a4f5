"""`remove_small_blobs`: components of at most the threshold volume go, per label, 6-connected."""

from __future__ import annotations

import numpy as np
import pytest

from totalseg.errors import InputError
from totalseg.postprocess.blobs import remove_small_blobs


def _labels() -> np.ndarray:
    a = np.zeros((23, 31, 17), dtype=np.uint8)
    a[2:6, 2:6, 2:6] = 1  # 64 voxels
    a[10, 10, 10] = 1  # 1 voxel
    a[12:14, 12, 12] = 1  # 2 voxels
    a[15:18, 20:23, 3:6] = 7  # 27 voxels
    a[20, 28, 14] = 7  # 1 voxel
    a[18, 23, 5] = 7  # touches the 27-voxel block at an edge only: its own component
    return a


def test_components_up_to_the_threshold_are_removed_per_label() -> None:
    labels = _labels()
    spacing = (2.0, 1.0, 1.5)  # 3 mm3 per voxel
    out = remove_small_blobs(labels, spacing_mm=spacing, min_volume_mm3=6.0)  # <= 2 voxels
    expected = labels.copy()
    expected[10, 10, 10] = expected[12:14, 12, 12] = 0
    expected[20, 28, 14] = expected[18, 23, 5] = 0
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == labels.dtype and labels[10, 10, 10] == 1  # the input is not changed
    # just below 2 voxels: the 2-voxel component stays (the reference's `counts <= threshold`)
    kept = remove_small_blobs(labels, spacing_mm=spacing, min_volume_mm3=5.9)
    assert kept[12, 12, 12] == 1 and kept[10, 10, 10] == 0
    # a threshold above every component empties the map; 0 changes nothing
    assert not remove_small_blobs(labels, spacing_mm=spacing, min_volume_mm3=1e6).any()
    np.testing.assert_array_equal(
        remove_small_blobs(labels, spacing_mm=spacing, min_volume_mm3=0), labels
    )


def test_bad_input_is_refused() -> None:
    with pytest.raises(InputError, match="Expected a 3D label array"):
        remove_small_blobs(np.zeros((3, 3)), spacing_mm=(1, 1, 1), min_volume_mm3=1)
    with pytest.raises(InputError, match="min_volume_mm3 >= 0"):
        remove_small_blobs(_labels(), spacing_mm=(1, 1, 1), min_volume_mm3=-1)
    with pytest.raises(InputError, match="integer label array"):
        remove_small_blobs(_labels().astype(float), spacing_mm=(1, 1, 1), min_volume_mm3=1)
