"""The reference tool's everyday `segment` options through the CLI, on tiny random-weight
models (`weights_home`) and a small CT-like phantom: one shared run with statistics, preview
and report; then one short run per option, each checked against a known answer."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from totalseg.anatomy import class_map
from totalseg.cli.app import main
from totalseg.errors import ConfigError
from totalseg.image import Image, LabelMap
from totalseg.io import read_image, read_label_map
from totalseg.options import SegmentOptions
from totalseg.pipeline import Segmenter
from totalseg.stats import compute_statistics, read_reference_statistics

from .conftest import axis_affine, body_phantom

SHAPE = (26, 30, 17)


@pytest.fixture(scope="module")
def home(weights_home):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOTALSEG_HOME", str(weights_home))
        yield weights_home


@pytest.fixture(scope="module")
def ct_path(tmp_path_factory) -> Path:
    """A phantom in a field of view with air around it (for --body-seg), LPS, anisotropic."""
    data = np.full((40, 44, 24), -1000, dtype=np.int16)
    data[7:33, 7:37, 4:21] = body_phantom(SHAPE, seed=3)
    path = tmp_path_factory.mktemp("ct") / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, axis_affine("LPS", (2.5, 2.8, 3.4))), path)
    return path


def _segment(ct: Path, out: Path, *extra: str) -> int:
    return main(["segment", "-i", str(ct), "-o", str(out), "--task", "total-fast",
                 "--device", "cpu", *extra])  # fmt: skip


@pytest.fixture(scope="module")
def plain(home, ct_path, tmp_path_factory) -> LabelMap:
    """The multilabel result without any of the options."""
    out = tmp_path_factory.mktemp("plain") / "seg.nii.gz"
    assert _segment(ct_path, out, "--ml") == 0
    return read_label_map(out)


@pytest.fixture(scope="module")
def full_run(home, ct_path, tmp_path_factory) -> Path:
    """One run with --statistics --preview --report: the folder it wrote into."""
    folder = tmp_path_factory.mktemp("full")
    rc = _segment(ct_path, folder / "seg.nii.gz", "--ml", "--statistics", "--preview",
                  "--report", str(folder / "run.json"))  # fmt: skip
    assert rc == 0
    return folder


def test_statistics_json_is_the_reference_layout(full_run, ct_path, plain) -> None:
    stats = read_reference_statistics(full_run / "statistics.json")
    assert list(stats) == list(class_map("v2").values())
    image = read_image(ct_path)
    table = compute_statistics(image, plain)
    voxel_mm3 = float(np.prod(image.spacing_mm))
    counts = np.bincount(np.asarray(plain.array).ravel(), minlength=118)
    assert {row.status for row in table} >= {"incomplete", "absent"}
    for row in table:
        entry = stats[row.name]
        if row.status == "ok":
            assert entry.volume_mm3 == pytest.approx(counts[row.label] * voxel_mm3)
            assert entry.mean_hu == pytest.approx(row.mean_hu, abs=1e-4)
        else:  # absent, or cut at the border: 0.0 as the reference writes them
            assert entry.volume_mm3 == 0.0 and entry.mean_hu == 0.0


def test_statistics_csv_is_the_richer_table(full_run, plain) -> None:
    with (full_run / "statistics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["structure"] for r in rows] == list(class_map("v2").values())
    counts = np.bincount(np.asarray(plain.array).ravel(), minlength=118)
    for r in rows:
        assert int(r["n_voxels"]) == counts[int(r["label"])]
        assert r["status"] in ("ok", "incomplete", "absent")
        assert (r["median_hu"] == "") == (r["status"] == "absent")  # NaN, never 0


def test_stats_include_incomplete_reports_cut_structures(home, ct_path, plain, tmp_path) -> None:
    out = tmp_path / "masks"
    assert _segment(ct_path, out, "--statistics", "--stats-include-incomplete") == 0
    stats = read_reference_statistics(out / "statistics.json")  # inside the mask folder
    image = read_image(ct_path)
    counts = np.bincount(np.asarray(plain.array).ravel(), minlength=118)
    for row in compute_statistics(image, plain):
        expected = counts[row.label] * float(np.prod(image.spacing_mm))
        assert stats[row.name].volume_mm3 == pytest.approx(expected)


def test_preview_is_a_png_a_person_can_read(full_run) -> None:
    import matplotlib.image

    path = full_run / "preview_total-fast.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert 300 <= height <= 2000 and 500 <= width <= 3000
    colours = np.unique((pixels[..., :3] * 255).astype(np.uint32) @ np.array([65536, 256, 1]))
    assert len(colours) > 50 and pixels[..., :3].std() > 0.05  # grey CT, colours, legend text


def test_report_is_a_run_manifest(full_run, ct_path) -> None:
    report = json.loads((full_run / "run.json").read_text())
    assert report["format"] == "totalseg-run-report" and report["task"] == "total-fast"
    assert set(report["versions"]) >= {"totalseg", "python", "numpy", "torch"}
    assert report["versions"]["torch"] and report["device"] == "cpu"
    (weights,) = report["weights"]
    assert weights["dataset_id"] == 297 and Path(weights["folder"]).is_dir()
    assert report["options"]["statistics"] is True and report["options"]["multilabel"] is True
    (case,) = report["cases"]
    assert case["source"] == str(ct_path) and case["elapsed_s"] > 0
    names = {Path(p).name for p in case["outputs"]}
    assert names == {"seg.nii.gz", "statistics.json", "statistics.csv", "preview_total-fast.png"}
    assert report["elapsed_s"] > 0


def test_fast_and_fastest_are_aliases_of_the_tasks(home, ct_path, plain, tmp_path) -> None:
    assert SegmentOptions(fast=True).task == "total-fast"
    assert SegmentOptions(fastest=True).task == "total-fastest"
    assert SegmentOptions(task="total_mr", fast=True).task == "total_mr-fast"
    assert SegmentOptions(task="total-fast", fast=True).task == "total-fast"
    out = tmp_path / "seg.nii.gz"
    rc = main(["segment", "-i", str(ct_path), "-o", str(out), "--ml", "--fast", "--device", "cpu"])
    assert rc == 0
    np.testing.assert_array_equal(read_label_map(out).array, plain.array)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "total-fastest", "fast": True}, "contradicts it"),
        ({"task": "demo", "fast": True}, "no 'demo-fast'"),
        ({"fast": True, "fastest": True}, "got both"),
        ({"model_dir": "m", "fastest": True}, "got a model folder"),
        ({"stats_include_incomplete": True}, "add --statistics"),
        ({"remove_small_blobs_mm3": -1.0}, "remove_small_blobs_mm3 >= 0"),
    ],
)
def test_contradictions_are_refused(fields, message) -> None:
    with pytest.raises(ConfigError, match=message):
        SegmentOptions(**fields)


def test_cli_refuses_contradictions_in_one_line(home, ct_path, tmp_path, capsys) -> None:
    cases = [
        (["--fastest"], "contradicts it"),
        (["--save-lowres", "--roi-subset", "liver"], "no crop with save_lowres"),
        (["--save-lowres", "--body-seg"], "no crop with save_lowres"),
    ]
    for extra, message in cases:
        assert _segment(ct_path, tmp_path / "o", *extra) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("Error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_body_seg_segments_the_body_box_on_the_full_grid(home, ct_path, plain, tmp_path) -> None:
    from totalseg.preprocess.body import body_box, body_mask

    out = tmp_path / "seg.nii.gz"
    assert _segment(ct_path, out, "--ml", "--body-seg") == 0
    result = read_label_map(out)
    image = read_image(ct_path)
    assert result.shape == image.shape and np.allclose(result.affine, image.affine)
    box = body_box(body_mask(np.asarray(image.array), image.spacing_mm))
    assert box is not None and any(s.start > 0 for s in box)  # a real crop
    affine = image.affine.copy()
    affine[:3, 3] = (image.affine @ np.array([*(s.start for s in box), 1.0]))[:3]
    cropped = Segmenter("total-fast", device="cpu")(Image(np.asarray(image.array)[box], affine))
    expected = np.zeros(image.shape, dtype=np.uint8)
    expected[box] = cropped.array
    np.testing.assert_array_equal(result.array, expected)


def test_remove_small_blobs_only_removes(home, ct_path, plain, tmp_path) -> None:
    out = tmp_path / "seg.nii.gz"
    assert _segment(ct_path, out, "--ml", "--remove-small-blobs") == 0  # 200 mm3
    cleaned = np.asarray(read_label_map(out).array)
    before = np.asarray(plain.array)
    changed = cleaned != before
    assert changed.any() and not cleaned[changed].any()  # voxels only ever set to background
    assert _segment(ct_path, out, "--ml", "--remove-small-blobs", "1e9") == 0
    assert not np.asarray(read_label_map(out).array).any()


def test_v1_order_renumbers_to_the_paper_ids(home, ct_path, plain, tmp_path) -> None:
    out = tmp_path / "seg.nii.gz"
    assert _segment(ct_path, out, "--ml", "--v1-order") == 0
    result = read_label_map(out)
    v1, v2 = class_map("v1"), {n: i for i, n in class_map("v2").items()}
    assert dict(result.labels) == {i: n for i, n in v1.items() if n in v2}
    assert len(result.labels) < 104  # the heart chambers are not in v2
    array, before = np.asarray(result.array), np.asarray(plain.array)
    for v1_id, name in result.labels.items():
        np.testing.assert_array_equal(array == v1_id, before == v2[name])
    assert not np.isin(array, [i for i in v1 if i not in result.labels]).any()


def test_save_lowres_keeps_the_model_grid(home, ct_path, plain, tmp_path) -> None:
    from totalseg.postprocess.restore import restore_labels, to_model_grid

    out = tmp_path / "seg.nii.gz"
    assert _segment(ct_path, out, "--ml", "--save-lowres", "--statistics") == 0
    lowres = read_label_map(out)
    model_image, grid = to_model_grid(read_image(ct_path), 3.0)
    assert lowres.shape == model_image.shape and np.allclose(lowres.affine, model_image.affine)
    assert np.allclose(lowres.spacing_mm, 3.0)
    np.testing.assert_array_equal(restore_labels(lowres, grid).array, plain.array)
    stats = read_reference_statistics(tmp_path / "statistics.json")  # on the model grid
    table = compute_statistics(model_image, lowres)
    for row in table:
        if row.status == "ok":
            assert stats[row.name].volume_mm3 == pytest.approx(row.n_voxels * 27.0)


def test_skip_saving_writes_only_what_was_asked(home, ct_path, tmp_path, capsys) -> None:
    out = tmp_path / "masks"
    assert _segment(ct_path, out, "--skip-saving", "--statistics") == 0
    assert sorted(p.name for p in out.iterdir()) == ["statistics.csv", "statistics.json"]
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {out / 'statistics.json'}",
        f"wrote {out / 'statistics.csv'}",
    ]
    assert _segment(ct_path, tmp_path / "nothing", "--skip-saving") == 0
    assert not (tmp_path / "nothing").exists()


def test_quiet_hides_the_progress_bar_and_verbose_logs(home, ct_path, tmp_path, capsys,
                                                      monkeypatch) -> None:  # fmt: skip
    import totalseg.cli.segment as cli_segment

    def no_bar() -> None:
        raise AssertionError("a progress bar was drawn under -q")

    monkeypatch.setattr(cli_segment, "_ProgressBar", no_bar)
    assert _segment(ct_path, tmp_path / "q.nii.gz", "--ml", "-q") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    monkeypatch.undo()
    assert _segment(ct_path, tmp_path / "v.nii.gz", "--ml", "-v") == 0
    assert "structures found" in capsys.readouterr().err
    logging.getLogger("totalseg").setLevel(logging.WARNING)


def test_options_do_not_leak_into_the_crop_model(home, ct_path, tmp_path) -> None:
    """--fast with a roi crop: the 6 mm crop model runs without --fast, --v1-order, ..."""
    out = tmp_path / "seg.nii.gz"
    rc = main(["segment", "-i", str(ct_path), "-o", str(out), "--ml", "--fast", "--device",
               "cpu", "--roi-subset", "liver,spleen", "--v1-order", "--remove-small-blobs",
               "10"])  # fmt: skip
    assert rc == 0
    v1 = {n: i for i, n in class_map("v1").items()}
    assert dict(read_label_map(out).labels) == {v1["spleen"]: "spleen", v1["liver"]: "liver"}
    assert SegmentOptions(fast=True, v1_order=True).for_crop_model().v1_order is False
