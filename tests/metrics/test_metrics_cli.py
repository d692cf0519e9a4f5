"""`totalseg evaluate` and `totalseg compare` end to end on the tiny synthetic dataset."""

from __future__ import annotations

import csv
import json
import re

import pytest

from totalseg.cli.app import main


@pytest.fixture(scope="module")
def two_results(dataset, tmp_path_factory):
    """Model A (perturbed masks) and model B (the reference itself) evaluated on all cases."""
    out = tmp_path_factory.mktemp("results")
    a, b = out / "model_a", out / "model_b"
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(dataset.pred_folder("ml_table")),
                "--ref",
                str(dataset.ref_public()),
                "--out",
                str(a),
                "--n-resamples",
                "300",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(dataset.ref_public()),
                "--ref",
                str(dataset.ref_public()),
                "--out",
                str(b),
                "--n-resamples",
                "300",
            ]
        )
        == 0
    )
    return a, b


def test_evaluate_prints_and_writes(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "evaluate",
            "--pred",
            str(dataset.pred_folder("ml_v1")),
            "--ref",
            str(dataset.ref_public()),
            "--class-map",
            "v1",
            "--subset",
            "btcv13",
            "--tolerance-mm",
            "2",
            "--out",
            str(out),
            "--n-resamples",
            "200",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "Evaluated 3 cases x 13 structures (NSD tolerance 2 mm)" in text
    assert re.search(r"^Dice \d\.\d{3} \(95% CI: \d\.\d{3}, \d\.\d{3}\)$", text, re.M)
    assert re.search(r"^NSD \d\.\d{3} \(95% CI", text, re.M)
    assert "1 missed by the prediction" in text
    for name in ("metrics.csv", "metrics.parquet", "summary.json"):
        assert (out / name).is_file()
    doc = json.loads((out / "summary.json").read_text())
    assert doc["tolerance_mm"] == 2.0 and doc["class_maps"]["prediction"] == "v1"
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"case", "structure", "metric", "value", "status"}


def test_evaluate_json_csv_only_structures_and_jobs(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "evaluate",
            "--pred",
            str(dataset.pred_folder("masks")),
            "--ref",
            str(dataset.ref_public()),
            "-s",
            "liver,spleen",
            "--structures",
            "aorta",
            "--metrics",
            "dice,nsd",
            "--jobs",
            "2",
            "--split",
            "test",
            "--csv-only",
            "--json",
            "--out",
            str(out),
            "--n-resamples",
            "100",
        ]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["structures"]) == ["liver", "spleen", "aorta"]
    assert doc["n_cases"] == 2 and doc["split"] == "test"
    assert set(doc["overall"]) == {"dice", "nsd"}
    assert not (out / "metrics.parquet").exists()


def test_compare_prints_paper_lines_and_writes(dataset, two_results, tmp_path, capsys):
    a, b = two_results
    out = tmp_path / "cmp"
    rc = main(
        [
            "compare",
            str(a),
            str(b),
            "--out",
            str(out),
            "--names",
            "Ours,Reference",
            "--n-resamples",
            "300",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "Ours vs Reference: 3 cases, 13 structures" in text
    pattern = (
        r"^Dice \d\.\d{3} \(95% CI: \d\.\d{3}, \d\.\d{3}\) vs 1\.000 \(1\.000, 1\.000\); "
        r"P (<|=|>) \.\d+$"
    )
    assert re.search(pattern, text, re.M), text
    assert re.search(r"^NSD .* vs 1\.000 \(1\.000, 1\.000\); P", text, re.M)
    with (out / "comparison.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["structure"] for r in rows} == {"overall", *dataset.names}
    assert {r["metric"] for r in rows} == {"dice", "nsd"}
    assert (out / "comparison.png").stat().st_size > 1000
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_subset_and_metric(two_results, tmp_path, capsys):
    a, b = two_results
    rc = main(
        [
            "compare",
            str(a),
            str(b),
            "--subset",
            "btcv13",
            "--metric",
            "hd95_mm",
            "--out",
            str(tmp_path / "c"),
            "--n-resamples",
            "100",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "HD95 (mm)" in text and "Dice" not in text


# ------------------------------------------------------------------------------ error paths


def run_error(args, capsys):
    rc = main(args)
    return rc, capsys.readouterr().err


def test_evaluate_missing_folder(dataset, tmp_path, capsys):
    rc, err = run_error(
        [
            "evaluate",
            "--pred",
            str(tmp_path / "nope"),
            "--ref",
            str(dataset.ref_public()),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert rc == 1 and err.startswith("Error: ") and "does not exist" in err


def test_evaluate_unknown_structure(dataset, tmp_path, capsys):
    rc, err = run_error(
        [
            "evaluate",
            "--pred",
            str(dataset.pred_folder("ml_table")),
            "--ref",
            str(dataset.ref_public()),
            "-s",
            "spleeen",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert rc == 1 and "Did you mean 'spleen'" in err


def test_evaluate_unknown_subset(dataset, tmp_path, capsys):
    rc, err = run_error(
        [
            "evaluate",
            "--pred",
            str(dataset.pred_folder("ml_table")),
            "--ref",
            str(dataset.ref_public()),
            "--subset",
            "btcv",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert rc == 1 and "Unknown subset 'btcv'" in err and "btcv13" in err


def test_evaluate_structures_and_subset_is_a_usage_error(dataset, tmp_path, capsys):
    rc, err = run_error(
        [
            "evaluate",
            "--pred",
            str(dataset.pred_folder("ml_table")),
            "--ref",
            str(dataset.ref_public()),
            "-s",
            "liver",
            "--subset",
            "btcv13",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert rc == 2 and "either --structures or --subset" in err


def test_evaluate_no_matching_cases(dataset, tmp_path, capsys):
    import shutil

    pred = tmp_path / "pred"
    pred.mkdir()
    shutil.copy(dataset.pred_folder("ml_table") / "s0001.nii.gz", pred / "x9.nii.gz")
    rc, err = run_error(
        [
            "evaluate",
            "--pred",
            str(pred),
            "--ref",
            str(dataset.ref_public()),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert rc == 1 and "got none in common" in err


def test_evaluate_mismatched_grid(dataset, tmp_path, capsys):
    import numpy as np

    from totalseg.image import LabelMap
    from totalseg.io import write_label_map

    pred = tmp_path / "pred"
    write_label_map(
        LabelMap(np.zeros((23, 31, 16), np.uint8), dataset.affine),
        pred / "s0001.nii.gz",
        label_table=False,
    )
    rc, err = run_error(
        [
            "evaluate",
            "--pred",
            str(pred),
            "--ref",
            str(dataset.ref_public()),
            "--out",
            str(tmp_path / "o"),
            "-s",
            "liver",
        ],
        capsys,
    )
    assert rc == 1 and "on the reference grid" in err and "resample the prediction" in err


def test_evaluate_bad_class_map_value(dataset, tmp_path, capsys):
    rc, err = run_error(
        [
            "evaluate",
            "--pred",
            str(dataset.pred_folder("ml_table")),
            "--ref",
            str(dataset.ref_public()),
            "--class-map",
            "v3",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert rc == 2 and "v3" in err


def test_compare_without_results(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    rc, err = run_error(
        ["compare", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "c")], capsys
    )
    assert rc == 1 and "run `totalseg evaluate` first" in err


def test_compare_no_common_cases(tmp_path, capsys):
    for name, case in (("a", "c1"), ("b", "c2")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.csv").write_text(
            f"case,structure,metric,value,status\n{case},liver,dice,0.9,ok\n"
        )
    rc, err = run_error(
        ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")], capsys
    )
    assert rc == 1 and "no case in common" in err


def test_compare_missing_metric_and_bad_names(two_results, tmp_path, capsys):
    a, b = two_results
    rc, err = run_error(
        ["compare", str(a), str(b), "--metric", "iou", "--out", str(tmp_path / "c")], capsys
    )
    assert rc == 1 and "Expected metric 'iou'" in err
    rc, err = run_error(
        ["compare", str(a), str(b), "--names", "only_one", "--out", str(tmp_path / "c")], capsys
    )
    assert rc == 2 and "two names" in err


def test_compare_structure_not_evaluated(two_results, tmp_path, capsys):
    a, b = two_results
    rc, err = run_error(
        ["compare", str(a), str(b), "-s", "colon", "--out", str(tmp_path / "c")], capsys
    )
    assert rc == 1 and "to hold colon" in err
