"""Surface distances, NSD, HD95, ASSD: known answers and agreement with DeepMind and MONAI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from totalseg.errors import InputError
from totalseg.metrics import surface_distances
from totalseg.metrics.surface import surfel_area_table

ANISO = (0.8, 1.2, 3.0)
SPACINGS = [ANISO, (1.5, 1.5, 1.5), (1.0, 1.0, 1.0), (0.7, 0.7, 2.5)]


def corner_area(spacing):
    """Area of one marching-cubes corner triangle (normal (1, 1, 1) / 8, scaled by spacing)."""
    s0, s1, s2 = spacing
    return math.sqrt((s1 * s2) ** 2 + (s0 * s2) ** 2 + (s0 * s1) ** 2) / 8


def smooth_blob(rng, shape=(34, 29, 21), sigma=3.0, level=0.7):
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    mask = field > level * field.std()
    mask[:1] = mask[-1:] = False  # keep shapes interior (MONAI crops with a 1-voxel margin)
    mask[:, :1] = mask[:, -1:] = False
    mask[:, :, :1] = mask[:, :, -1:] = False
    return mask


def random_pair(seed):
    """A random smooth reference and a prediction that is a perturbed copy or another blob."""
    rng = np.random.default_rng(seed)
    ref = smooth_blob(rng)
    kind = seed % 3
    if kind == 0:
        pred = ndimage.binary_dilation(ref, iterations=1) & ~smooth_blob(rng, level=1.6)
    elif kind == 1:
        pred = np.roll(ref, shift=(1, -2, 1), axis=(0, 1, 2))
    else:
        pred = smooth_blob(rng)
    return ref, pred


# ---------------------------------------------------------------------------- known answers


def test_single_voxel_surface_is_eight_corner_triangles():
    mask = np.zeros((5, 6, 7), dtype=bool)
    mask[2, 3, 4] = True
    sd = surface_distances(mask, mask, spacing_mm=ANISO)
    assert len(sd.ref_areas_mm2) == 8
    np.testing.assert_allclose(sd.ref_areas_mm2, corner_area(ANISO), rtol=1e-12)
    assert sd.surface_dice(0.0) == 1.0
    assert sd.hausdorff_mm() == 0.0
    assert sd.average_symmetric_mm() == 0.0


@pytest.mark.parametrize(("axis", "step_mm"), [(0, ANISO[0]), (1, ANISO[1]), (2, ANISO[2])])
def test_two_voxels_two_apart_hand_computed(axis, step_mm):
    """Voxels at index 0 and 2 along one axis: corners are 1 or 2 spacings apart."""
    ref = np.zeros((4, 4, 4), dtype=bool)
    pred = np.zeros_like(ref)
    idx = [1, 1, 1]
    ref[tuple(idx)] = True
    idx[axis] = 3
    pred[tuple(idx)] = True
    ref = np.roll(ref, -1, axis=axis)  # ref at index 0, pred at index 2 along `axis`
    pred = np.roll(pred, -1, axis=axis)
    sd = surface_distances(ref, pred, spacing_mm=ANISO)
    near, far = step_mm, 2 * step_mm
    np.testing.assert_allclose(np.sort(sd.ref_to_pred_mm), [near] * 4 + [far] * 4)
    np.testing.assert_allclose(np.sort(sd.pred_to_ref_mm), [near] * 4 + [far] * 4)
    assert sd.surface_dice(near * 0.99) == 0.0
    assert sd.surface_dice(near) == pytest.approx(0.5)  # "<= tolerance" counts
    assert sd.surface_dice(far) == pytest.approx(1.0)
    assert sd.surface_overlap(near) == pytest.approx((0.5, 0.5))
    assert sd.hausdorff_mm(95) == pytest.approx(far)
    assert sd.hausdorff_mm(50) == pytest.approx(near)
    assert sd.average_symmetric_mm() == pytest.approx(1.5 * step_mm)
    assert sd.average_mm() == pytest.approx((1.5 * step_mm, 1.5 * step_mm))


def test_area_table_of_flat_face_is_the_face_area():
    """A code with one full 2x2 side set is a flat quad of area s_j * s_k."""
    table = surfel_area_table(ANISO)
    code_low_i_face = 128 | 64 | 32 | 16  # voxels (0, b, c): the face normal to axis 0
    assert table[code_low_i_face] == pytest.approx(ANISO[1] * ANISO[2])
    assert table[0] == table[255] == 0.0
    assert table[128] == pytest.approx(corner_area(ANISO))


def test_identical_masks_give_nsd_1_hd95_0():
    ref, _ = random_pair(1)
    sd = surface_distances(ref, ref, spacing_mm=ANISO)
    assert sd.surface_dice(0.0) == 1.0
    assert sd.hausdorff_mm(95) == 0.0
    assert sd.hausdorff_mm(100) == 0.0
    assert sd.average_symmetric_mm() == 0.0


def test_far_apart_masks_give_nsd_0():
    ref = np.zeros((40, 10, 10), dtype=bool)
    pred = np.zeros_like(ref)
    ref[2:6, 2:6, 2:6] = True
    pred[30:34, 2:6, 2:6] = True
    sd = surface_distances(ref, pred, spacing_mm=(1.0, 1.0, 1.0))
    assert sd.surface_dice(3.0) == 0.0
    assert sd.hausdorff_mm(100) == pytest.approx(28.0)
    assert sd.ref_to_pred_mm.min() == pytest.approx(24.0)


def test_concentric_spheres_anisotropic():
    """Spheres of radius 25 and 27 mm on a (0.8, 1.2, 3.0) grid: distances are about 2 mm."""
    shape = (90, 60, 25)
    centre = np.array(shape) / 2
    i, j, k = np.indices(shape)
    axes = zip((i, j, k), centre, ANISO, strict=True)
    d_mm = np.sqrt(sum(((x - c) * s) ** 2 for x, c, s in axes))
    ref, pred = d_mm <= 25.0, d_mm <= 27.0
    sd = surface_distances(ref, pred, spacing_mm=ANISO)
    assert sd.surface_dice(2.0 + max(ANISO)) == 1.0
    assert sd.surface_dice(0.5) < 0.5
    assert abs(sd.hausdorff_mm(95) - 2.0) <= max(ANISO)
    assert abs(sd.average_symmetric_mm() - 2.0) <= max(ANISO)


def test_mask_touching_the_volume_edge_has_a_closed_surface():
    ref = np.zeros((6, 6, 6), dtype=bool)
    ref[0:3, 0:3, 0:3] = True
    sd = surface_distances(ref, ref, spacing_mm=(1, 1, 1))
    inside = np.zeros((8, 8, 8), dtype=bool)
    inside[1:4, 1:4, 1:4] = True
    assert sd.ref_area_mm2 == pytest.approx(
        surface_distances(inside, inside, spacing_mm=(1, 1, 1)).ref_area_mm2
    )


def test_empty_surfaces():
    empty = np.zeros((5, 5, 5), dtype=bool)
    one = empty.copy()
    one[2, 2, 2] = True
    sd = surface_distances(one, empty, spacing_mm=(1, 1, 1))
    assert sd.surface_dice(3.0) == 0.0
    assert sd.hausdorff_mm() == math.inf
    assert sd.average_symmetric_mm() == math.inf
    assert np.all(np.isinf(sd.ref_to_pred_mm))
    both = surface_distances(empty, empty, spacing_mm=(1, 1, 1))
    assert math.isnan(both.surface_dice(3.0))
    assert math.isnan(both.hausdorff_mm())
    assert math.isnan(both.average_symmetric_mm())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: surface_distances(m, m[:-1], spacing_mm=(1, 1, 1)), "same shape"),
        (lambda m: surface_distances(m, m, spacing_mm=(1, 0, 1)), "positive voxel spacings"),
        (lambda m: surface_distances(m, m, spacing_mm=(1, 1)), "three positive"),
        (lambda m: surface_distances(m, m, spacing_mm=(1, 1, 1)).surface_dice(-1), ">= 0 mm"),
        (lambda m: surface_distances(m, m, spacing_mm=(1, 1, 1)).hausdorff_mm(101), r"\[0, 100\]"),
    ],
)
def test_input_errors(call, match):
    mask = np.ones((3, 3, 3), dtype=bool)
    with pytest.raises(InputError, match=match):
        call(mask)


# ------------------------------------------------------------ DeepMind surface-distance parity


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_deepmind_surface_distance(spacing, seed):
    sdm = pytest.importorskip("surface_distance")
    ref, pred = random_pair(seed)
    theirs = sdm.compute_surface_distances(ref, pred, spacing)
    ours = surface_distances(ref, pred, spacing_mm=spacing)
    for tol in (0.5, 1.0, 1.5, 2.0, 3.0, 5.0):
        assert ours.surface_dice(tol) == pytest.approx(
            sdm.compute_surface_dice_at_tolerance(theirs, tol), abs=1e-6
        )
        np.testing.assert_allclose(
            ours.surface_overlap(tol),
            sdm.compute_surface_overlap_at_tolerance(theirs, tol),
            atol=1e-6,
        )
    for percent in (50, 95, 100):
        assert ours.hausdorff_mm(percent) == pytest.approx(
            sdm.compute_robust_hausdorff(theirs, percent), abs=1e-9
        )
    np.testing.assert_allclose(
        ours.average_mm(), sdm.compute_average_surface_distance(theirs), rtol=1e-9
    )
    np.testing.assert_allclose(
        np.sort(ours.ref_to_pred_mm), theirs["distances_gt_to_pred"], rtol=0, atol=1e-12
    )
    assert ours.ref_area_mm2 == pytest.approx(theirs["surfel_areas_gt"].sum(), rel=1e-12)


def test_agrees_with_deepmind_on_real_segmentations(shared_data):
    """Official 1.5 mm vs 3 mm model outputs on real CT, every structure present in both."""
    sdm = pytest.importorskip("surface_distance")
    import nibabel as nib

    ref = np.asarray(nib.load(shared_data / "example_seg.nii.gz").dataobj)
    pred = np.asarray(nib.load(shared_data / "example_seg_fast.nii.gz").dataobj)
    spacing = (3.0, 3.0, 3.0)
    labels = sorted(set(np.unique(ref)) & set(np.unique(pred)) - {0})
    assert len(labels) > 30
    for label in labels:
        a, b = ref == label, pred == label
        theirs = sdm.compute_surface_distances(a, b, spacing)
        ours = surface_distances(a, b, spacing_mm=spacing)
        assert ours.surface_dice(3.0) == pytest.approx(
            sdm.compute_surface_dice_at_tolerance(theirs, 3.0), abs=1e-9
        )
        assert ours.hausdorff_mm(95) == pytest.approx(sdm.compute_robust_hausdorff(theirs, 95))


def test_deepmind_empty_mask_policy_differs_as_documented(monkeypatch):
    """DeepMind: HD95 +inf for a missing prediction (ours too at this level) and for two empty
    masks (ours NaN: undefined); NSD of two empty masks NaN with a warning (ours NaN, silent).
    Its release still uses `np.Inf` (removed in NumPy 2) on this path; shimmed for the test."""
    sdm = pytest.importorskip("surface_distance")
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    empty = np.zeros((6, 6, 6), dtype=bool)
    one = empty.copy()
    one[2:4, 2:4, 2:4] = True
    theirs = sdm.compute_surface_distances(one, empty, (1, 1, 1))
    assert sdm.compute_robust_hausdorff(theirs, 95) == math.inf
    assert sdm.compute_surface_dice_at_tolerance(theirs, 3.0) == 0.0
    both = sdm.compute_surface_distances(empty, empty, (1, 1, 1))
    assert sdm.compute_robust_hausdorff(both, 95) == math.inf
    with np.errstate(invalid="ignore"):
        assert math.isnan(sdm.compute_surface_dice_at_tolerance(both, 3.0))
    assert math.isnan(surface_distances(empty, empty, spacing_mm=(1, 1, 1)).hausdorff_mm())


# -------------------------------------------------------------------------------- MONAI parity


def _monai_nsd(ref, pred, spacing, tol, *, use_subvoxels):
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("monai.metrics")

    def onehot(m):
        return torch.from_numpy(np.stack([~m, m])[None].astype(np.float32))

    value = metrics.compute_surface_dice(
        onehot(pred), onehot(ref), [tol], spacing=list(spacing), use_subvoxels=use_subvoxels
    )
    return float(value[0, 0])


@pytest.mark.parametrize("spacing", [ANISO, (1.5, 1.5, 1.5)])
@pytest.mark.parametrize("seed", range(3))
def test_agrees_with_monai_subvoxel_surface_dice(spacing, seed):
    ref, pred = random_pair(seed)
    ours = surface_distances(ref, pred, spacing_mm=spacing)
    for tol in (1.0, 3.0):
        theirs = _monai_nsd(ref, pred, spacing, tol, use_subvoxels=True)
        assert ours.surface_dice(tol) == pytest.approx(theirs, abs=1e-6)


def test_monai_default_surface_definition_differs():
    """MONAI's default (use_subvoxels=False) counts boundary voxels (mask XOR its erosion) with
    equal weight and measures between voxel centres, not area-weighted grid-corner surfels like
    DeepMind and the paper. Agreement on trivial cases, measurable difference otherwise."""
    ref, pred = random_pair(0)
    ours = surface_distances(ref, pred, spacing_mm=ANISO)
    assert _monai_nsd(ref, ref, ANISO, 0.0, use_subvoxels=False) == 1.0
    assert surface_distances(ref, ref, spacing_mm=ANISO).surface_dice(0.0) == 1.0
    differs = [
        abs(_monai_nsd(ref, pred, ANISO, tol, use_subvoxels=False) - ours.surface_dice(tol))
        for tol in (0.5, 1.0, 1.5)
    ]
    assert max(differs) > 1e-3
