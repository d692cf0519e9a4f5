"""Per-structure metrics: Dice/volume known answers, the edge-case policy, boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from totalseg.errors import InputError
from totalseg.metrics import (
    METRICS,
    bounding_box,
    count_overlap,
    dice_score,
    evaluate_masks,
    label_boxes,
    union_box,
)

ANISO = (0.8, 1.2, 3.0)


def ball(shape, centre_mm, radius_mm, spacing):
    grid = np.indices(shape).astype(float)
    d2 = sum(((grid[a] + 0.5) * spacing[a] - centre_mm[a]) ** 2 for a in range(3))
    return d2 <= radius_mm**2


def test_dice_hand_computed():
    ref = np.zeros((4, 5, 6), dtype=bool)
    pred = np.zeros_like(ref)
    ref[0, 0, 0:4] = True  # 4 voxels
    pred[0, 0, 2:6] = True  # voxels 2..5: 2 inside ref, 2 outside
    assert dice_score(ref, pred) == pytest.approx(2 * 2 / (4 + 4))
    counts = count_overlap(ref, pred)
    assert (counts.n_ref, counts.n_pred, counts.n_both) == (4, 4, 2)
    assert counts.volumes_ml(2.0) == (0.008, 0.008)


def test_dice_identical_disjoint_and_empty():
    a = np.zeros((3, 4, 5), dtype=bool)
    a[1, 1:3, 2] = True
    b = np.roll(a, 2, axis=1)
    assert dice_score(a, a) == 1.0
    assert dice_score(a, b) == 0.0
    assert math.isnan(dice_score(np.zeros_like(a), np.zeros_like(a)))


def test_spheres_dice_and_volume_analytic():
    """Two 20 mm spheres 10 mm apart: lens volume pi (4r + d)(2r - d)^2 / 12."""
    spacing, r, d = (0.8, 1.0, 1.25), 20.0, 10.0
    shape = (80, 50, 50)
    c = np.array([32.0, 25.0, 31.25])
    ref = ball(shape, c, r, spacing)
    pred = ball(shape, c + np.array([d, 0.0, 0.0]), r, spacing)
    result = evaluate_masks(ref, pred, spacing_mm=spacing)
    sphere = 4 / 3 * math.pi * r**3
    lens = math.pi * (4 * r + d) * (2 * r - d) ** 2 / 12
    assert result.status == "ok"
    assert result.values["dice"] == pytest.approx(lens / sphere, rel=0.01)
    assert result.values["volume_ref_ml"] == pytest.approx(sphere / 1000, rel=0.01)
    assert result.values["volume_diff_ml"] == pytest.approx(0.0, abs=0.3)
    assert result.values["hd95_mm"] == pytest.approx(d, abs=1.5)


def test_identical_masks_all_metrics():
    ref = ball((30, 25, 12), (12.0, 15.0, 18.0), 8.0, ANISO)
    values = evaluate_masks(ref, ref, spacing_mm=ANISO).values
    assert values["dice"] == 1.0
    assert values["nsd"] == 1.0
    assert values["hd95_mm"] == 0.0
    assert values["assd_mm"] == 0.0
    assert values["volume_diff_ml"] == 0.0
    assert values["volume_diff_rel"] == 0.0
    assert values["volume_ref_ml"] == pytest.approx(ref.sum() * 0.8 * 1.2 * 3.0 / 1000)


def test_disjoint_masks():
    ref = np.zeros((30, 8, 8), dtype=bool)
    pred = np.zeros_like(ref)
    ref[1:5, 2:6, 2:6] = True
    pred[20:24, 2:6, 2:6] = True
    values = evaluate_masks(ref, pred, spacing_mm=ANISO, tolerance_mm=3.0).values
    assert values["dice"] == 0.0
    assert values["nsd"] == 0.0
    assert values["hd95_mm"] > 10 * 0.8


@pytest.mark.parametrize(
    ("ref_on", "pred_on", "status", "dice", "nsd"),
    [
        (True, True, "ok", 1.0, 1.0),
        (True, False, "pred_empty", 0.0, 0.0),
        (False, True, "ref_empty", math.nan, math.nan),
        (False, False, "both_empty", math.nan, math.nan),
    ],
)
def test_edge_case_policy(ref_on, pred_on, status, dice, nsd):
    """The reference tool's paper evaluation: missed structure -> 0, absent reference -> NaN."""
    block = np.zeros((6, 7, 8), dtype=bool)
    block[2:4, 2:5, 3:6] = True
    empty = np.zeros_like(block)
    ref, pred = (block if ref_on else empty), (block if pred_on else empty)
    result = evaluate_masks(ref, pred, spacing_mm=ANISO)
    assert result.status == status
    v = result.values
    assert (math.isnan(v["dice"]) and math.isnan(dice)) or v["dice"] == dice
    assert (math.isnan(v["nsd"]) and math.isnan(nsd)) or v["nsd"] == nsd
    if status != "ok":  # distances to a missing surface: excluded, never 0 or inf
        assert math.isnan(v["hd95_mm"]) and math.isnan(v["assd_mm"])
    assert v["volume_diff_ml"] == pytest.approx(v["volume_pred_ml"] - v["volume_ref_ml"])
    if status == "pred_empty":
        assert v["volume_diff_rel"] == -1.0
    if not ref_on:
        assert math.isnan(v["volume_diff_rel"])


def test_metric_selection_skips_surfaces():
    block = np.zeros((6, 7, 8), dtype=bool)
    block[2:4, 2:5, 3:6] = True
    result = evaluate_masks(block, block, spacing_mm=ANISO, metrics=["dice", "volume_ref_ml"])
    assert list(result.values) == ["dice", "volume_ref_ml"]
    assert set(evaluate_masks(block, block, spacing_mm=ANISO).values) == set(METRICS)


def test_boxes_from_label_map_give_the_same_result():
    rng = np.random.default_rng(3)
    labels = np.zeros((40, 30, 20), dtype=np.uint8)
    labels[5:15, 3:12, 2:9] = 2
    labels[20:33, 10:25, 5:17] = 7
    pred = labels.copy()
    pred[rng.random(labels.shape) < 0.02] = 7
    ref_boxes, pred_boxes = label_boxes(labels), label_boxes(pred)
    assert set(ref_boxes) == {2, 7}
    assert ref_boxes[2] == (slice(5, 15), slice(3, 12), slice(2, 9))
    for label in (2, 7):
        direct = evaluate_masks(labels == label, pred == label, spacing_mm=ANISO)
        boxed = evaluate_masks(
            labels == label,
            pred == label,
            spacing_mm=ANISO,
            boxes=(ref_boxes.get(label), pred_boxes.get(label)),
        )
        assert direct.values == pytest.approx(boxed.values, nan_ok=True)


def test_bounding_box_and_union():
    mask = np.zeros((9, 8, 7), dtype=bool)
    assert bounding_box(mask) is None
    mask[2, 3, 4] = mask[5, 1, 6] = True
    box = bounding_box(mask)
    assert box == (slice(2, 6), slice(1, 4), slice(4, 7))
    grown = union_box(box, None, shape=mask.shape, margin=2)
    assert grown == (slice(0, 8), slice(0, 6), slice(2, 7))
    assert union_box(None, None, shape=mask.shape) is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: evaluate_masks(m, m[:, :-1], spacing_mm=ANISO), "same shape"),
        (lambda m: evaluate_masks(m, m, spacing_mm=ANISO, metrics=["dice", "iou"]), "unknown iou"),
        (lambda m: evaluate_masks(m, m, spacing_mm=ANISO, metrics=[]), "at least one metric"),
        (lambda m: evaluate_masks(m, m, spacing_mm=ANISO, tolerance_mm=-1), ">= 0 mm"),
        (lambda m: evaluate_masks(m, m, spacing_mm=(1, -1, 1)), "positive voxel spacings"),
        (lambda m: count_overlap(m, m[0]), "same shape"),
        (lambda m: bounding_box(m[0]), "3D mask"),
        (lambda m: label_boxes(m.astype(float)), "integer label map"),
        (lambda m: label_boxes(-m.astype(np.int16)), "non-negative"),
    ],
)
def test_input_errors(call, match):
    mask = np.ones((3, 4, 5), dtype=bool)
    with pytest.raises(InputError, match=match):
        call(mask)
