"""The intensity-only body mask: conservative (lungs, arms, cut fields of view inside)."""

from __future__ import annotations

import numpy as np
import pytest

from totalseg.errors import InputError
from totalseg.preprocess.body import body_box, body_mask


def _torso(shape=(84, 64, 40), cut_left: bool = False) -> np.ndarray:
    """Air, an elliptic torso (40 HU) with two lungs (-850 HU), two separate arms and specks."""
    ct = np.full(shape, -1000.0, dtype=np.float32)
    i, j = np.ogrid[: shape[0], : shape[1]]
    cx = 10 if cut_left else shape[0] // 2
    torso = ((i - cx) / 30.0) ** 2 + ((j - 32) / 20.0) ** 2 <= 1
    ct[torso] = 40.0
    for lx in (cx - 12, cx + 12):
        lung = ((i - lx) / 9.0) ** 2 + ((j - 30) / 12.0) ** 2 <= 1
        ct[lung & torso] = -850.0
    if not cut_left:
        for ax in (5, 74):
            arm = ((i - ax) / 5.0) ** 2 + ((j - 32) / 6.0) ** 2 <= 1
            ct[arm] = 30.0
    ct[..., :5] = -1000.0  # the scan stops below the torso's end
    ct[70, 2, 20] = 200.0  # a speck of noise far outside
    return ct


def test_lungs_arms_inside_far_air_outside() -> None:
    ct = _torso()
    mask = body_mask(ct, (1.5, 1.5, 1.5), margin_mm=3.0, coarse_mm=1.5)
    assert mask.shape == ct.shape and mask.dtype == bool
    assert mask[ct == 30.0].all()  # separate arms are kept
    assert mask[(ct == -850.0)].all()  # lungs inside
    assert mask[ct == 40.0].all()
    assert not mask[70, 2, 20]  # the speck is dropped (and not near anything)
    assert not mask[0, 0, 20] and not mask[40, 63, 20]  # far air stays outside
    assert not mask[..., 0].any()  # slices below the body, beyond the margin


def test_a_lung_cut_by_the_field_of_view_counts_as_inside() -> None:
    ct = _torso(cut_left=True)
    mask = body_mask(ct, (1.5, 1.5, 1.5), margin_mm=0.0, coarse_mm=1.5)
    assert mask[ct == -850.0].all()


def test_coarse_mask_is_a_superset_and_orientation_free() -> None:
    ct = _torso()
    fine = body_mask(ct, (1.5, 1.5, 1.5), coarse_mm=1.5)
    coarse = body_mask(ct, (1.5, 1.5, 1.5))  # 6 mm blocks (4 voxels)
    assert coarse[fine].all()
    transposed = body_mask(ct.transpose(2, 0, 1), (1.5, 1.5, 1.5), coarse_mm=1.5)
    np.testing.assert_array_equal(transposed, fine.transpose(2, 0, 1))


def test_box_and_empty() -> None:
    mask = np.zeros((5, 6, 7), bool)
    assert body_box(mask) is None
    mask[1:3, 2, 4:6] = True
    assert body_box(mask) == (slice(1, 3), slice(2, 3), slice(4, 6))
    empty = body_mask(np.full((8, 8, 8), -1000.0), (2.0, 2.0, 2.0))
    assert not empty.any()


def test_bad_input() -> None:
    with pytest.raises(InputError, match=r"3D HU array and 3 spacings, got shape \(4, 4\)"):
        body_mask(np.zeros((4, 4)), (1.0, 1.0))
    with pytest.raises(InputError, match="positive spacings"):
        body_mask(np.zeros((4, 4, 4)), (1.0, 0.0, 1.0))
