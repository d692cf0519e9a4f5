"""Known-answer tests of per-structure statistics (synthetic boxes and spheres)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from totalseg.errors import GeometryError, InputError, UnknownStructureError
from totalseg.image import Image, LabelMap
from totalseg.stats import compute_statistics

SHAPE = (23, 31, 17)


def _volumes(affine: np.ndarray, seed: int = 0) -> tuple[Image, LabelMap]:
    rng = np.random.default_rng(seed)
    image = Image(rng.normal(40.0, 25.0, SHAPE).astype(np.float32), affine)
    labels = np.zeros(SHAPE, dtype=np.uint16)
    labels[5:12, 6:20, 4:9] = 7  # away from the border (>= 3 voxels)
    labels[0:4, 10:14, 6:10] = 2  # touches i = 0
    labels[15:18, 25:28, 12:13] = 300  # gap ids, uint16
    names = {2: "kidney_left", 7: "liver", 300: "custom", 9: "spleen"}
    return image, LabelMap(labels, affine, names)


def test_box_known_answers_in_any_orientation(any_affine: np.ndarray) -> None:
    image, label_map = _volumes(any_affine)
    table = compute_statistics(image, label_map)
    liver = table["liver"]
    mask = np.asarray(label_map.array) == 7
    values = np.asarray(image.array)[mask].astype(np.float64)
    assert liver.status == "ok"
    assert liver.n_voxels == 7 * 14 * 5
    assert liver.volume_mm3 == pytest.approx(liver.n_voxels * image.voxel_volume_mm3)
    assert liver.volume_ml == pytest.approx(liver.volume_mm3 / 1000)
    assert liver.mean_hu == pytest.approx(values.mean())
    assert liver.median_hu == pytest.approx(np.median(values))
    assert liver.std_hu == pytest.approx(values.std())
    assert (liver.min_hu, liver.max_hu) == (values.min(), values.max())
    assert liver.centroid_vox == pytest.approx((8.0, 12.5, 6.0))
    world = any_affine @ np.array([8.0, 12.5, 6.0, 1.0])
    assert liver.centroid_mm == pytest.approx(tuple(world[:3]))
    assert (liver.bbox_min_vox, liver.bbox_max_vox) == ((5, 6, 4), (11, 19, 8))
    corners = np.array([[a, b, c, 1.0] for a in (5, 11) for b in (6, 19) for c in (4, 8)])
    world_corners = (any_affine @ corners.T)[:3]
    assert liver.bbox_min_mm == pytest.approx(tuple(world_corners.min(axis=1)))
    assert liver.bbox_max_mm == pytest.approx(tuple(world_corners.max(axis=1)))


def test_matches_naive_per_mask_computation() -> None:
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array([0, 1, 5, 9, 1000], dtype=np.uint16), size=SHAPE)
    image = Image(rng.integers(-1000, 1500, SHAPE).astype(np.int16), np.diag([0.7, 0.9, 2.5, 1]))
    table = compute_statistics(image, LabelMap(labels, image.affine), border_voxels=0)
    assert table.names == ["label_1", "label_5", "label_9", "label_1000"]
    for row in table:
        mask = labels == row.label
        vals = np.asarray(image.array)[mask].astype(float)
        ijk = np.argwhere(mask)
        assert row.n_voxels == mask.sum()
        assert row.mean_hu == pytest.approx(vals.mean())
        assert row.median_hu == pytest.approx(np.median(vals))
        assert row.std_hu == pytest.approx(vals.std())
        assert row.centroid_vox == pytest.approx(tuple(ijk.mean(axis=0)))
        assert row.bbox_min_vox == tuple(ijk.min(axis=0))
        assert row.bbox_max_vox == tuple(ijk.max(axis=0))


def test_sphere_volume_is_close_to_analytic_with_anisotropic_spacing() -> None:
    spacing = (0.8, 1.1, 2.0)
    shape = (80, 60, 34)
    centre = np.array([40, 30, 17]) * spacing
    grid = np.stack(
        np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing, strict=True)), indexing="ij")
    )
    radius_mm = 25.0
    inside = ((grid - centre[:, None, None, None]) ** 2).sum(axis=0) <= radius_mm**2
    affine = np.diag([*spacing, 1.0])
    table = compute_statistics(
        Image(np.zeros(shape, np.int16), affine),
        LabelMap(inside.astype(np.uint8), affine, {1: "liver"}),
    )
    assert table["liver"].volume_mm3 == pytest.approx(4 / 3 * math.pi * radius_mm**3, rel=0.02)


@pytest.mark.parametrize(
    ("lo", "hi", "status"),
    [
        ((3, 3, 3), (19, 27, 13), "ok"),  # exactly 3 voxels from every edge
        ((2, 3, 3), (19, 27, 13), "incomplete"),  # within 3 of i = 0
        ((3, 3, 3), (19, 28, 13), "incomplete"),  # within 3 of j = 30
        ((3, 3, 3), (19, 27, 16), "incomplete"),  # on the last k
    ],
)
def test_border_rule_flags_but_keeps_values(lo, hi, status) -> None:
    labels = np.zeros(SHAPE, np.uint8)
    labels[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = 1
    image = Image(np.full(SHAPE, 50, np.int16), np.eye(4))
    row = compute_statistics(image, LabelMap(labels, np.eye(4), {1: "liver"}))["liver"]
    assert row.status == status
    assert row.volume_mm3 == labels.sum()
    assert row.mean_hu == 50.0
    off = compute_statistics(image, LabelMap(labels, np.eye(4), {1: "liver"}), border_voxels=0)
    assert off["liver"].status == "ok"


def test_absent_structures_are_nan_not_zero() -> None:
    image, label_map = _volumes(np.eye(4))
    spleen = compute_statistics(image, label_map)["spleen"]
    assert spleen.status == "absent"
    assert spleen.n_voxels == 0
    for value in (spleen.volume_mm3, spleen.volume_ml, spleen.mean_hu, spleen.std_hu):
        assert math.isnan(value)
    assert spleen.bbox_min_vox is None
    assert all(math.isnan(v) for v in spleen.centroid_mm)


def test_selects_structures_in_the_requested_order() -> None:
    image, label_map = _volumes(np.eye(4))
    table = compute_statistics(image, label_map, structures=["spleen", "liver"])
    assert table.names == ["spleen", "liver"]
    assert [r.status for r in table] == ["absent", "ok"]
    assert compute_statistics(image, label_map).names == [
        "kidney_left",
        "liver",
        "spleen",
        "custom",
    ]


def test_unknown_structure_suggests_a_name() -> None:
    image, label_map = _volumes(np.eye(4))
    with pytest.raises(UnknownStructureError, match="Did you mean 'liver'"):
        compute_statistics(image, label_map, structures=["livr"])
    with pytest.raises(UnknownStructureError, match="got 'nope'"):
        compute_statistics(image, label_map)["nope"]


def test_grid_mismatch_is_a_geometry_error() -> None:
    image, label_map = _volumes(np.eye(4))
    moved = LabelMap(label_map.array, np.diag([1.0, 1.0, 2.0, 1.0]), label_map.labels)
    with pytest.raises(GeometryError, match="on the image grid"):
        compute_statistics(image, moved)


def test_negative_border_is_an_input_error() -> None:
    image, label_map = _volumes(np.eye(4))
    with pytest.raises(InputError, match="border_voxels >= 0"):
        compute_statistics(image, label_map, border_voxels=-1)


def test_negative_labels_are_an_input_error() -> None:
    labels = np.zeros(SHAPE, np.int16)
    labels[5, 5, 5] = -1
    with pytest.raises(InputError, match="non-negative label values"):
        compute_statistics(Image(np.zeros(SHAPE, np.int16), np.eye(4)), LabelMap(labels, np.eye(4)))


def test_reference_compatible_mode_emulates_the_reference_tool() -> None:
    image, label_map = _volumes(np.diag([1.5, 1.5, 3.0, 1.0]))
    fractional = image.with_array(np.asarray(image.array) + 0.7)
    table = compute_statistics(fractional, label_map, reference_compatible=True)
    liver = table["liver"]
    mask = np.asarray(label_map.array) == 7
    truncated = np.asarray(fractional.array)[mask].astype(np.int16).astype(float)
    assert liver.mean_hu == round(truncated.mean(), 5)
    assert liver.volume_mm3 == mask.sum() * 1.5 * 1.5 * 3.0
    assert (table["kidney_left"].volume_mm3, table["kidney_left"].mean_hu) == (0.0, 0.0)
    assert table["kidney_left"].status == "incomplete"  # status still says why
    assert (table["spleen"].volume_mm3, table["spleen"].mean_hu) == (0.0, 0.0)
    kept = compute_statistics(fractional, label_map, reference_compatible=True, border_voxels=0)
    assert kept["kidney_left"].volume_mm3 > 0
    ref = table.to_reference_dict()
    assert ref["liver"] == {"volume": liver.volume_mm3, "intensity": liver.mean_hu}
