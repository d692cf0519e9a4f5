"""`stats --class-map v1|v2|TASK|FILE` for files without a label table, and
`--reference-compatible` writing the reference tool's statistics.json layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from totalseg.cli.app import main
from totalseg.image import Image, LabelMap
from totalseg.io import write_image, write_label_map
from totalseg.stats import read_reference_statistics

SHAPE = (20, 24, 16)
AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])


@pytest.fixture
def bare(tmp_path: Path) -> tuple[Path, Path]:
    """A CT and a multilabel file with ids 5 and 52 but no label table."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[5:12, 6:15, 4:10] = 5
    labels[13:16, 16:20, 5:8] = 52
    image = np.where(labels == 5, 60, np.where(labels == 52, 200, -100)).astype(np.int16)
    image[0, 0, 0] = -1000  # air: a plausible CT (preprocess.plausibility)
    ct = write_image(Image(image, AFFINE), tmp_path / "ct.nii.gz")
    seg = write_label_map(LabelMap(labels, AFFINE), tmp_path / "seg.nii.gz", label_table=False)
    return ct, seg


def _structures(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)["structures"]


def test_class_map_names_the_ids(bare: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    ct, seg = (str(p) for p in bare)
    assert sorted(_structures(capsys, ["stats", ct, seg, "--json"])) == ["label_5", "label_52"]
    v2 = _structures(capsys, ["stats", ct, seg, "--json", "--class-map", "v2"])
    assert v2["liver"]["mean_hu"] == 60.0 and v2["aorta"]["mean_hu"] == 200.0  # 52 = aorta (v2)
    v1 = _structures(capsys, ["stats", ct, seg, "--json", "--class-map", "v1"])
    assert v1["liver"]["status"] == "ok" and "iliac_artery_right" in v1  # 52 in v1
    table = tmp_path / "map.csv"
    table.write_text("id,name\n5,my_liver\n52,my_vessel\n")
    own = _structures(capsys, ["stats", ct, seg, "--json", "--class-map", str(table)])
    assert set(own) == {"my_liver", "my_vessel"}
    (tmp_path / "map.json").write_text(json.dumps({"5": "liver"}))
    assert "liver" in _structures(capsys, ["stats", ct, seg, "--json", "--class-map",
                                           str(tmp_path / "map.json")])  # fmt: skip
    assert main(["stats", ct, seg, "--class-map", str(tmp_path / "none.csv")]) == 1
    assert "Expected a class map file" in capsys.readouterr().err


def test_reference_compatible_writes_the_reference_layout(
    bare: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    ct, seg = (str(p) for p in bare)
    out = tmp_path / "statistics.json"
    argv = ["stats", ct, seg, "--class-map", "v2", "--reference-compatible", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert set(doc["liver"]) == {"volume", "intensity"} and len(doc) == 117  # every v2 class
    assert doc["liver"]["volume"] == pytest.approx(7 * 9 * 6 * 12.0)
    assert doc["spleen"] == {"volume": 0.0, "intensity": 0.0}  # absent: 0.0 like the reference
    assert read_reference_statistics(out)["aorta"].mean_hu == 200.0
    assert main([*argv[:-2], "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == doc
