"""nnU-Net 1's largest-connected-component postprocessing: known answers and the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from tests.nnunet1_oracle import require_nnunet1

from totalseg.postprocess.largest_component import keep_largest_components


def test_keeps_the_largest_component_per_class() -> None:
    labels = np.zeros((6, 6, 3), dtype=np.uint8)
    labels[0:2, 0:2, 0] = 1  # 4 voxels
    labels[4:6, 4:6, :] = 1  # 12 voxels: kept
    labels[0, 5, 0] = 2  # 1 voxel, class 2 not listed
    labels[3, 0, 0] = 3
    got = keep_largest_components(labels, [1, 3], voxel_volume_mm3=2.0)
    assert got[0, 0, 0] == 0 and got[5, 5, 2] == 1 and got[0, 5, 0] == 2 and got[3, 0, 0] == 3
    kept = keep_largest_components(labels, [1], voxel_volume_mm3=2.0, min_valid_mm3={1: 8.0})
    np.testing.assert_array_equal(kept, labels)  # 4 voxels * 2 mm3 = 8 mm3 is not < 8
    merged = keep_largest_components(labels, [(1, 3)], voxel_volume_mm3=1.0)
    assert merged[3, 0, 0] == 0 and merged[5, 5, 2] == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_nnunet1(seed: int) -> None:
    require_nnunet1()
    from nnunet.postprocessing.connected_components import (
        remove_all_but_the_largest_connected_component,
    )

    labels = np.random.default_rng(seed).integers(0, 4, (14, 12, 9)).astype(np.uint8)
    classes = [1, 2, (1, 3)]
    sizes = {1: 3.0, 2: 1.0, (1, 3): 2.0}
    for min_sizes in (None, sizes):
        expected, _, _ = remove_all_but_the_largest_connected_component(
            labels.copy(), classes, 0.5, min_sizes
        )
        got = keep_largest_components(
            labels, classes, voxel_volume_mm3=0.5, min_valid_mm3=min_sizes
        )
        np.testing.assert_array_equal(got, expected)
