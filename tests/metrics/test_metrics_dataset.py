"""Dataset evaluation: layouts, id spaces, case matching, parallel runs, tables, errors."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from totalseg.anatomy import subset
from totalseg.errors import (
    GeometryError,
    InputError,
    MissingDependencyError,
    UnknownStructureError,
)
from totalseg.image import LabelMap
from totalseg.io import write_label_map
from totalseg.metrics import evaluate_masks
from totalseg.metrics.cases import discover_cases
from totalseg.metrics.dataset import EvaluationConfig, evaluate_dataset, write_results
from totalseg.metrics.tables import read_table, require_tables_extra, summarize, write_table

SPACING = (1.5, 0.8, 3.0)
NAMES = subset("btcv13")  # what the `dataset` fixture holds


def expected_rows(ds, names=NAMES):
    out = {}
    for case in sorted(ds.ref):
        for name in names:
            result = evaluate_masks(ds.ref[case][name], ds.pred[case][name], spacing_mm=SPACING)
            for metric, value in result.values.items():
                out[(case, name, metric)] = (value, result.status)
    return out


def as_dict(rows):
    return {(c, s, m): (v, st) for c, s, m, v, st in rows}


def assert_rows_equal(got, want):
    assert set(got) == set(want)
    for key, (value, status) in want.items():
        assert got[key][1] == status, key
        assert got[key][0] == pytest.approx(value, nan_ok=True, rel=1e-6), key  # float32 affine


@pytest.mark.parametrize(
    ("layout", "class_map"), [("ml_table", "v2"), ("ml_v1", "v1"), ("masks", "v2")]
)
def test_every_prediction_layout_gives_the_same_rows(dataset, layout, class_map):
    config = EvaluationConfig(pred_class_map=class_map)
    result = evaluate_dataset(
        dataset.pred_folder(layout), dataset.ref_public(), structures=list(NAMES), config=config
    )
    assert result.cases == ["s0001", "s0002", "s0003"]
    assert_rows_equal(as_dict(result.rows), expected_rows(dataset))
    statuses = {(c, s): st for c, s, _, _, st in result.rows}
    assert statuses[("s0002", "liver")] == "pred_empty"
    assert statuses[("s0003", "pancreas")] == "ref_empty"


def test_default_structures_are_those_both_sides_hold(dataset):
    result = evaluate_dataset(dataset.pred_folder("ml_table"), dataset.ref_public())
    assert sorted(result.structures) == sorted(NAMES)


def test_multilabel_reference_and_single_files(dataset, tmp_path):
    """A multilabel reference against per-class predictions; one file against one file."""
    ref_dir = dataset.pred_folder("ml_table")  # any multilabel folder serves as reference
    result = evaluate_dataset(dataset.pred_folder("masks"), ref_dir, structures=["liver"])
    assert all(v == 1.0 for _, _, m, v, st in result.rows if m == "dice" and st == "ok")
    single = evaluate_dataset(
        ref_dir / "s0001.nii.gz", ref_dir / "s0001.nii.gz", structures=["aorta", "spleen"]
    )
    assert single.cases == ["s0001"]


def test_btcv13_subset_and_v1_v2_name_mapping(dataset):
    """v1 prediction ids vs per-class reference: matched by name through the registry."""
    names = ["pancreas", "inferior_vena_cava", "adrenal_gland_left"]
    result = evaluate_dataset(
        dataset.pred_folder("ml_v1"),
        dataset.ref_public(),
        structures=names,
        config=EvaluationConfig(pred_class_map="v1"),
    )
    assert_rows_equal(as_dict(result.rows), expected_rows(dataset, names))


def test_parallel_equals_serial(dataset):
    serial = evaluate_dataset(dataset.pred_folder("ml_table"), dataset.ref_public())
    parallel = evaluate_dataset(dataset.pred_folder("ml_table"), dataset.ref_public(), jobs=2)
    assert [r[:3] for r in parallel.rows] == [r[:3] for r in serial.rows]  # same order
    assert_rows_equal(as_dict(parallel.rows), as_dict(serial.rows))


def test_unmatched_cases_are_reported(dataset, tmp_path):
    pred = tmp_path / "pred"
    shutil.copytree(dataset.pred_folder("ml_table"), pred)
    (pred / "s0003.nii.gz").rename(pred / "extra.nii.gz")
    result = evaluate_dataset(pred, dataset.ref_public(), structures=["liver"])
    assert result.cases == ["s0001", "s0002"]
    assert result.cases_without_prediction == ["s0003"]
    assert result.cases_without_reference == ["extra"]


def test_discover_skips_non_cases_and_rejects_duplicates(dataset, tmp_path):
    cases = discover_cases(dataset.ref_public(), role="reference")
    assert list(cases) == ["s0001", "s0002", "s0003"]
    assert all(e.kind == "masks" and e.path.name == "segmentations" for e in cases.values())
    dup = tmp_path / "dup"
    shutil.copytree(dataset.pred_folder("ml_table"), dup)
    shutil.copytree(dataset.pred_folder("masks") / "s0001", dup / "s0001")
    with pytest.raises(InputError, match="one prediction per case"):
        discover_cases(dup)


def test_write_results_tables_and_summary(dataset, tmp_path):
    result = evaluate_dataset(dataset.pred_folder("ml_table"), dataset.ref_public())
    summary = write_results(result, tmp_path / "out", n_resamples=500)
    got = as_dict(read_table(tmp_path / "out" / "metrics.csv"))
    assert_rows_equal(got, as_dict(result.rows))
    assert_rows_equal(as_dict(read_table(tmp_path / "out" / "metrics.parquet")), got)
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert doc == json.loads(json.dumps(summary))
    assert doc["n_cases"] == 3 and doc["tolerance_mm"] == 3.0
    liver = doc["structures"]["liver"]
    dice = [got[(c, "liver", "dice")][0] for c in ("s0001", "s0002", "s0003")]
    assert liver["dice"]["mean"] == pytest.approx(np.mean(dice))  # the missed liver counts as 0
    assert liver["status_counts"] == {"ok": 2, "pred_empty": 1}
    assert doc["structures"]["pancreas"]["dice"]["n"] == 2  # absent reference: excluded
    assert doc["status_counts"]["ref_empty"] == 1
    assert doc["excluded_pairs"]["hd95_mm"] == 2  # missed liver + absent pancreas
    assert doc["overall"]["dice"]["n_structures"] == 13
    ci = doc["overall"]["dice"]
    assert ci["ci_low"] <= ci["mean"] <= ci["ci_high"]


def test_summary_of_rows_counts_excluded():
    rows = [
        ("a", "liver", "dice", 0.9, "ok"),
        ("b", "liver", "dice", math.nan, "ref_empty"),
        ("a", "spleen", "dice", 0.0, "pred_empty"),
        ("b", "spleen", "dice", 0.8, "ok"),
    ]
    doc = summarize(rows, n_resamples=200)
    assert doc["excluded_pairs"] == {"dice": 1}
    assert doc["structures"]["liver"]["dice"]["n"] == 1
    assert doc["overall"]["dice"]["mean"] == pytest.approx((0.9 + 0.4) / 2)


# ------------------------------------------------------------------------------ error paths


def test_missing_folder(dataset, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        evaluate_dataset(tmp_path / "nope", dataset.ref_public())


def test_empty_folder(dataset, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="found none"):
        evaluate_dataset(tmp_path / "empty", dataset.ref_public())


def test_no_matching_cases(dataset, tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    shutil.copy(dataset.pred_folder("ml_table") / "s0001.nii.gz", pred / "other.nii.gz")
    with pytest.raises(InputError, match="matching case ids, got none in common"):
        evaluate_dataset(pred, dataset.ref_public())


def test_unknown_structure_did_you_mean(dataset):
    with pytest.raises(UnknownStructureError, match="Did you mean 'liver'"):
        evaluate_dataset(dataset.pred_folder("ml_table"), dataset.ref_public(), structures=["livr"])


def test_structure_missing_on_one_side(dataset):
    with pytest.raises(InputError, match="to hold colon"):
        evaluate_dataset(
            dataset.pred_folder("ml_table"), dataset.ref_public(), structures=["colon"]
        )


def test_mismatched_grids(dataset, tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    arr = np.zeros((20, 31, 17), dtype=np.uint8)
    write_label_map(LabelMap(arr, dataset.affine), pred / "s0001.nii.gz", label_table=False)
    with pytest.raises(GeometryError, match="on the reference grid"):
        evaluate_dataset(pred, dataset.ref_public(), structures=["liver"])


def test_shifted_affine_is_a_grid_mismatch(dataset, tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    affine = dataset.affine.copy()
    affine[0, 3] += 1.0
    arr = np.zeros((23, 31, 17), dtype=np.uint8)
    write_label_map(LabelMap(arr, affine), pred / "s0001.nii.gz", label_table=False)
    with pytest.raises(GeometryError, match="affine differing by 1"):
        evaluate_dataset(pred, dataset.ref_public(), structures=["liver"])


def test_wrong_class_map(dataset, tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    arr = np.zeros((23, 31, 17), dtype=np.uint8)
    arr[1, 1, 1] = 110  # a v2 id beyond the 104 v1 classes
    write_label_map(LabelMap(arr, dataset.affine), pred / "s0001.nii.gz", label_table=False)
    with pytest.raises(InputError, match=r"label values of the v1 class map.*--class-map"):
        evaluate_dataset(
            pred,
            dataset.ref_public(),
            structures=["liver"],
            config=EvaluationConfig(pred_class_map="v1"),
        )


def test_config_and_jobs_errors(dataset):
    with pytest.raises(InputError, match=">= 0 mm"):
        EvaluationConfig(tolerance_mm=-1)
    with pytest.raises(InputError, match="'v1' or 'v2'"):
        EvaluationConfig(pred_class_map="v3")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="jobs >= 1"):
        evaluate_dataset(dataset.pred_folder("ml_table"), dataset.ref_public(), jobs=0)


def test_table_errors(tmp_path):
    with pytest.raises(InputError, match="run `totalseg evaluate` first"):
        read_table(tmp_path)
    bad = tmp_path / "metrics.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="Expected a table with columns"):
        read_table(bad)
    with pytest.raises(InputError, match=r"\.csv or \.parquet"):
        write_table([], tmp_path / "t.xlsx")


def test_missing_extra_names_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=r"pyarrow.*totalseg\[tables\]"):
        require_tables_extra("pandas", "pyarrow")


def test_evaluate_label_maps_in_memory_across_id_spaces(dataset):
    """A v1-id map (no names) against a v2 map with names: compared structure by structure."""
    from totalseg.anatomy import class_map

    v1 = {n: i for i, n in class_map("v1").items()}
    v2 = {n: i for i, n in class_map("v2").items()}
    case = "s0001"
    ref_arr = np.zeros(dataset.ref[case]["liver"].shape, dtype=np.uint8)
    pred_arr = np.zeros_like(ref_arr)
    for name in NAMES:
        ref_arr[dataset.ref[case][name]] = v2[name]
        pred_arr[dataset.pred[case][name]] = v1[name]
    ref = LabelMap(ref_arr, dataset.affine, {v2[n]: n for n in NAMES})
    pred = LabelMap(pred_arr, dataset.affine)
    from totalseg.metrics import evaluate_label_maps

    results = evaluate_label_maps(ref, pred, config=EvaluationConfig(pred_class_map="v1"))
    assert list(results) == list(NAMES)
    want = expected_rows(dataset)
    for name, result in results.items():
        for metric, value in result.values.items():
            assert value == pytest.approx(want[(case, name, metric)][0], nan_ok=True)
    with pytest.raises(GeometryError, match="on the reference grid"):
        evaluate_label_maps(
            ref,
            LabelMap(pred_arr[:-1], dataset.affine),
            structures=["liver"],
            config=EvaluationConfig(pred_class_map="v1"),
        )


def test_split_from_meta_csv(dataset):
    result = evaluate_dataset(
        dataset.pred_folder("ml_table"), dataset.ref_public(), structures=["liver"], split="test"
    )
    assert result.cases == ["s0002", "s0003"]
    assert result.cases_without_prediction == []


@pytest.mark.parametrize(
    ("split", "use_ref", "match"),
    [
        ("bogus", True, "split train, val or test, got 'bogus'"),
        ("val", True, "cases of the val split"),
        ("test", False, "image_id;split"),
    ],
)
def test_split_errors(dataset, split, use_ref, match):
    ref = dataset.ref_public() if use_ref else dataset.pred_folder("ml_table")
    with pytest.raises(InputError, match=match):
        evaluate_dataset(dataset.pred_folder("ml_table"), ref, structures=["liver"], split=split)
