"""The `total` model sets end to end: exact input grid, part merge, roi_subset, and parity with
the reference tool's orchestration (paraphrased below) driving nnunetv2 on the same weights."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from totalseg.anatomy import class_map, part_maps
from totalseg.image import Image
from totalseg.pipeline import Segmenter, SegmentOptions


def reference_tool(path: Path, spacing_mm: float, datasets, home: Path, run_nnunet, tmp: Path):
    """TotalSegmentator's nnUNet_predict_image for a task, as its source does it (see
    docs/reference_tool.md section 3): canonical, zoom order 1 -> int32, nnU-Net per part from a
    temp file (step 0.8, no TTA), merge by LUT, nearest back to the canonical shape, undo
    canonical."""
    from totalseg.models.tasks import weights_entry

    original = nib.load(path)
    img = nib.Nifti1Image(original.get_fdata(), original.affine)
    canonical = nib.as_closest_canonical(img)
    zoom = np.array(canonical.header.get_zooms()) / np.array([spacing_mm] * 3)
    affine = canonical.affine.copy()
    for i in range(3):
        affine[:3, i] = affine[:3, i] / zoom[i]
    data = ndimage.zoom(canonical.get_fdata(), zoom, order=1, mode="nearest").astype(np.int32)
    resampled = tmp / "s01_0000.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), resampled)
    global_inv = {name: i for i, name in class_map("v2").items()}
    combined = np.zeros(data.shape, dtype=np.uint8)
    for dataset_id in datasets:
        entry = weights_entry(dataset_id)
        seg = run_nnunet(home / "weights" / entry.folder / entry.model, resampled, tile_step=0.8)
        local = part_maps("v2").get(dataset_id)
        if local is None:  # single-model task: its labels are the global ids
            combined = seg.astype(np.uint8)
            continue
        for jdx, name in local.items():
            combined[seg == jdx] = global_inv[name]
    back = ndimage.zoom(
        combined.astype(np.float64),
        np.array(canonical.shape) / np.array(data.shape),
        order=0,
        mode="nearest",
    ).astype(np.uint8)
    pred = nib.Nifti1Image(back, canonical.affine)
    ornt = nib.orientations
    from_canonical = ornt.ornt_transform(
        ornt.axcodes2ornt("RAS"), ornt.io_orientation(original.affine)
    )
    return np.asarray(pred.as_reoriented(from_canonical).dataobj), canonical.affine


@pytest.mark.parametrize(
    ("task", "codes", "spacing"),
    [("total", "LPS", (0.9, 1.2, 2.1)), ("total-fast", "PIR", (2.2, 2.6, 1.9))],
)
def test_parity_with_reference_orchestration(
    task, codes, spacing, weights_home, run_nnunet, affine_of, phantom, tmp_path
):
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(phantom((23, 31, 17), seed=3), affine_of(codes, spacing)), path)
    datasets = (291, 292, 293, 294, 295) if task == "total" else (297,)
    expected, _ = reference_tool(
        path, 1.5 if task == "total" else 3.0, datasets, weights_home, run_nnunet, tmp_path
    )
    got = Segmenter(task, device="cpu", parity=True, options=SegmentOptions(home=weights_home))(
        path
    )
    assert got.shape == (23, 31, 17)
    np.testing.assert_allclose(got.affine, nib.load(path).affine)
    assert np.array_equal(np.asarray(got.array), expected)
    assert len(got.present_labels()) > 5
    assert dict(got.labels) == class_map("v2")


@pytest.mark.parametrize("codes", ["LPS", "PIR", "oblique"])
def test_output_lands_on_the_exact_input_grid(codes, weights_home, affine_of, phantom):
    image = Image(phantom((23, 31, 17), seed=1), affine_of(codes, (1.1, 0.7, 2.3)))
    out = Segmenter("total-fastest", device="cpu", options=SegmentOptions(home=weights_home))(image)
    assert out.shape == image.shape and out.same_grid(image, atol=0)
    assert out.dtype == np.uint8 and set(out.present_labels()) <= set(class_map("v2"))


def test_roi_subset_runs_only_the_parts_that_hold_it(weights_home, affine_of, phantom):
    opts = SegmentOptions(home=weights_home, roi_crop=False)
    image = Image(phantom((40, 36, 30), seed=2), affine_of("RAS", (1.5, 1.5, 1.5)))
    full = Segmenter("total", device="cpu", options=opts)(image)
    names = class_map("v2")
    present = {names[i] for i in full.present_labels()}
    parts = part_maps("v2")
    holders = [d for d in sorted(parts) if present & set(parts[d].values())][:2]
    assert len(holders) == 2
    chosen = [sorted(present & set(parts[d].values()))[0] for d in holders]
    segmenter = Segmenter("total", device="cpu", roi_subset=chosen, options=opts)
    assert [p.name.split("_")[0] for p in segmenter.parts] == [f"Dataset{d}" for d in holders]
    assert sorted(segmenter.labels.values()) == sorted(chosen)
    out = segmenter(image)
    assert set(out.present_labels()) <= set(segmenter.labels)
    keep = np.isin(np.asarray(full.array), list(segmenter.labels))
    assert keep.any()
    # where the full run ends on a kept class, no later part overwrote it: the subset run agrees
    np.testing.assert_array_equal(np.asarray(out.array)[keep], np.asarray(full.array)[keep])


def test_roi_subset_crop_keeps_the_result_inside_the_box_of_the_low_res_masks(
    weights_home, affine_of, phantom
):
    opts = SegmentOptions(home=weights_home, roi_crop_margin_mm=3.0)
    image = Image(phantom((44, 40, 30), seed=6), affine_of("PIR", (1.5, 1.2, 1.8)))
    rough = Segmenter("total-fastest", device="cpu", options=opts)(image)
    smallest = min(rough.present_labels(), key=lambda i: int(rough.mask(i).sum()))
    segmenter = Segmenter("total", device="cpu", roi_subset=[rough.labels[smallest]], options=opts)
    out = segmenter(image)
    assert out.shape == image.shape and out.same_grid(image, atol=0)
    margin = (3.0 / np.asarray(image.spacing_mm)).astype(int)
    inside = np.zeros(image.shape, dtype=bool)
    where = np.argwhere(rough.mask(smallest))
    lo, hi = np.maximum(where.min(0) - margin, 0), where.max(0) + 1 + margin
    inside[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    assert not inside.all(), "the box should be smaller than the image for this test"
    assert not np.asarray(out.array)[~inside].any()


def test_roi_subset_crop_finding_nothing_gives_an_empty_map(weights_home, affine_of, phantom):
    opts = SegmentOptions(home=weights_home)
    image = Image(phantom((30, 28, 20), seed=7), affine_of("LPS", (1.5, 1.5, 1.5)))
    rough = Segmenter("total-fastest", device="cpu", options=opts)(image)
    absent = next(n for i, n in class_map("v2").items() if i not in rough.present_labels())
    out = Segmenter("total", device="cpu", roi_subset=[absent], options=opts)(image)
    assert out.shape == image.shape and not np.asarray(out.array).any()
    assert list(out.labels.values()) == [absent]


def test_models_stay_loaded_across_cases_and_progress_is_reported(weights_home, affine_of, phantom):
    events = []
    segmenter = Segmenter(
        "total", device="cpu", progress=events.append, options=SegmentOptions(home=weights_home)
    )
    networks = [id(p.predictor.networks[0]) for p in segmenter.parts]
    for seed in (1, 2):
        segmenter(Image(phantom((20, 22, 18), seed=seed), affine_of("LAS", (1.5, 1.5, 1.5))))
    assert [id(p.predictor.networks[0]) for p in segmenter.parts] == networks
    assert {e.part for e in events} == {1, 2, 3, 4, 5} and all(e.n_parts == 5 for e in events)
    last = [e for e in events if e.part == 5][-1]
    assert last.tiles_done == last.tiles_total


def test_merge_later_parts_overwrite_earlier_ones():
    from totalseg.postprocess.merge import local_to_global_lut, merge_parts

    glob = {1: "a", 2: "b", 3: "c"}
    first = np.array([[1, 1, 0, 2]], dtype=np.uint8)  # local 1 = a, 2 = b
    second = np.array([[0, 1, 1, 0]], dtype=np.uint8)  # local 1 = c
    merged = merge_parts([(first, {1: "a", 2: "b"}), (second, {1: "c"})], glob)
    np.testing.assert_array_equal(merged, [[1, 3, 3, 2]])
    np.testing.assert_array_equal(local_to_global_lut({1: "c", 2: "a"}, glob), [0, 3, 1])


def test_total_fast_parity_on_example_ct(shared_data, weights_home, run_nnunet, tmp_path):
    path = shared_data / "example_ct_sm.nii.gz"
    expected, _ = reference_tool(path, 3.0, (297,), weights_home, run_nnunet, tmp_path)
    got = Segmenter(
        "total-fast", device="cpu", parity=True, options=SegmentOptions(home=weights_home)
    )
    out = got(path)
    assert out.same_grid(Image(np.zeros(out.shape), nib.load(path).affine), atol=0)
    assert np.array_equal(np.asarray(out.array), expected)
