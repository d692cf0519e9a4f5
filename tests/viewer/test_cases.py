"""Viewer cases: reading, measuring, encoding, previews, and the one-case cache."""

from __future__ import annotations

import gc
import gzip
import weakref
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from totalseg.errors import GeometryError, ImageFileError, InputError
from totalseg.image import Image, LabelMap
from totalseg.io import write_image, write_label_map
from totalseg.viewer import CaseCache, CaseSpec, LoadedCase, load_case
from totalseg.viewer.cases import label_colour, preview_step, structure_rows


def _decode(body: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(body))


def test_label_colours_are_distinct_and_deterministic() -> None:
    colours = [label_colour(v) for v in range(1, 118)]
    assert len(set(colours)) == len(colours)
    assert all(0 <= c <= 255 for rgb in colours for c in rgb)
    assert label_colour(5) == label_colour(5)


def test_structure_rows_keep_missing_values_missing() -> None:
    records = [
        {
            "structure": "liver",
            "label": 5,
            "status": "ok",
            "n_voxels": 10,
            "volume_ml": 1.5,
            "mean_hu": 50.0,
            "centroid_x_mm": 1.0,
            "centroid_y_mm": 2.0,
            "centroid_z_mm": 3.0,
        },
        {
            "structure": "spleen",
            "label": 1,
            "status": "absent",
            "n_voxels": 0,
            "volume_ml": float("nan"),
            "mean_hu": None,
            "centroid_x_mm": float("nan"),
            "centroid_y_mm": float("nan"),
            "centroid_z_mm": float("nan"),
        },
    ]
    rows = structure_rows(records, {"liver": "below_min_volume"})
    assert [r["name"] for r in rows] == ["spleen", "liver"]  # label order
    assert rows[0]["volume_ml"] is None and rows[0]["centroid_mm"] is None
    assert rows[1]["centroid_mm"] == [1.0, 2.0, 3.0] and rows[1]["flag"] == "below_min_volume"


@pytest.mark.parametrize(
    ("shape", "max_voxels", "step"),
    [((10, 10, 10), 1000, 1), ((10, 10, 11), 1000, 2), ((512, 512, 600), 24_000_000, 3)],
)
def test_preview_step(shape: tuple[int, int, int], max_voxels: int, step: int) -> None:
    assert preview_step(shape, max_voxels=max_voxels) == step


def test_the_preview_lies_on_the_same_world_points(phantom_case: Any) -> None:
    case = load_case(CaseSpec("c", phantom_case.ct, phantom_case.seg), preview_max_voxels=100_000)
    assert case.step == 2 and case.info()["preview_step"] == 2
    preview = _decode(case.volume_gz("ct", preview=True))
    full = phantom_case.image
    assert preview.shape == tuple(-(-s // 2) for s in full.shape)
    p = np.array([3, 4, 5, 1.0])
    np.testing.assert_allclose(preview.affine @ p, full.affine @ np.r_[2 * p[:3], 1.0])
    np.testing.assert_array_equal(np.asarray(preview.dataobj), full.array[::2, ::2, ::2])
    labels = _decode(case.volume_gz("labels", preview=True))
    np.testing.assert_array_equal(
        np.asarray(labels.dataobj), phantom_case.label_map.array[::2, ::2, ::2]
    )
    assert case.volume_gz("ct", preview=True) is case.volume_gz("ct", preview=True)  # cached


def test_a_mask_folder_gives_the_same_structures_as_the_multilabel_file(phantom_case: Any) -> None:
    from_file = load_case(CaseSpec("a", phantom_case.ct, phantom_case.seg))
    from_folder = load_case(CaseSpec("b", phantom_case.ct, phantom_case.masks))
    present = {s["name"]: s["volume_ml"] for s in from_file.structures if s["volume_ml"]}
    assert {s["name"]: s["volume_ml"] for s in from_folder.structures} == pytest.approx(present)


def test_labels_stored_in_another_axis_order_are_put_on_the_ct_grid(
    phantom_case: Any, tmp_path: Path
) -> None:
    lm = phantom_case.label_map
    # the same voxels stored L-P-S: flip i and j, and the affine with them
    flipped = np.ascontiguousarray(np.asarray(lm.array)[::-1, ::-1, :])
    shape = np.array(lm.shape)
    affine = lm.affine @ np.array(
        [[-1, 0, 0, shape[0] - 1], [0, -1, 0, shape[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1.0]]
    )
    write_label_map(LabelMap(flipped, affine, lm.labels), tmp_path / "lps.nii.gz")
    case = load_case(CaseSpec("c", phantom_case.ct, tmp_path / "lps.nii.gz"))
    assert case.label_map is not None and case.label_map.same_grid(phantom_case.image)
    np.testing.assert_array_equal(case.label_map.array, lm.array)


def test_labels_on_another_grid_are_a_geometry_error(phantom_case: Any, tmp_path: Path) -> None:
    lm = phantom_case.label_map
    write_label_map(LabelMap(np.asarray(lm.array)[1:], lm.affine, lm.labels), tmp_path / "s.nii.gz")
    with pytest.raises(GeometryError, match=r"Expected the segmentation .* on the image grid"):
        load_case(CaseSpec("c", phantom_case.ct, tmp_path / "s.nii.gz"))


def test_bad_inputs_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match="does not exist"):
        load_case(CaseSpec("c", tmp_path / "missing.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 2), np.int16), np.eye(4)), tmp_path / "4d.nii.gz")
    with pytest.raises(InputError, match="Expected a 3D volume, got shape"):
        load_case(CaseSpec("c", tmp_path / "4d.nii.gz"))
    with pytest.raises(InputError, match="non-empty case id"):
        CaseSpec("", tmp_path / "x.nii.gz")


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (np.array([-1024.0, 40.0, 3000.0]), np.int16),
        (np.array([-1024.0, 40.5, 3000.0]), np.float32),
        (np.array([0, 70000], np.int32), np.int32),
    ],
)
def test_the_ct_is_sent_as_int16_when_that_is_exact(
    values: np.ndarray, dtype: type, tmp_path: Path
) -> None:
    array = np.resize(values, (3, 4, 5)).astype(values.dtype)
    write_image(Image(array, np.eye(4)), tmp_path / "ct.nii.gz")
    case = load_case(CaseSpec("c", tmp_path / "ct.nii.gz"))
    sent = _decode(case.volume_gz("ct"))
    assert sent.get_data_dtype() == dtype
    np.testing.assert_allclose(np.asarray(sent.dataobj), array)
    with pytest.raises(KeyError, match="no segmentation"):
        case.volume_gz("labels")


def test_the_cache_holds_one_case_at_a_time() -> None:
    loads: list[str] = []

    def loader(case_id: str) -> LoadedCase:
        loads.append(case_id)
        image = Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
        return LoadedCase(case_id, image, None, [])

    cache = CaseCache(loader)
    first = weakref.ref(cache.get("a"))
    assert cache.get("a") is first() and loads == ["a"]
    assert cache.get("b").case_id == "b"
    gc.collect()
    assert first() is None  # the first case is gone once the second is loaded
    cache.get("a")
    assert loads == ["a", "b", "a"]
