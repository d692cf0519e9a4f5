"""Statistics files: JSON/CSV round trips, atomic writes, the reference tool's JSON."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from totalseg.errors import ImageFileError, InputError
from totalseg.image import Image, LabelMap
from totalseg.stats import (
    RECORD_COLUMNS,
    StructureStatsTable,
    compute_statistics,
    read_reference_statistics,
    read_statistics,
    write_statistics,
)


@pytest.fixture
def table() -> StructureStatsTable:
    shape = (12, 14, 10)
    labels = np.zeros(shape, np.uint8)
    labels[4:8, 4:9, 4:6] = 1
    labels[0:2, 0:2, 0:2] = 3
    rng = np.random.default_rng(1)
    image = Image(rng.integers(-100, 200, shape).astype(np.int16), np.diag([1.5, 1.5, 3.0, 1.0]))
    names = {1: "liver", 2: "spleen", 3: "kidney_left"}
    return compute_statistics(image, LabelMap(labels, image.affine, names))


def test_json_round_trip_keeps_nan_as_null(table: StructureStatsTable, tmp_path: Path) -> None:
    path = write_statistics(table, tmp_path / "stats.json")
    raw = json.loads(path.read_text())
    assert raw["structures"]["spleen"]["volume_ml"] is None
    assert raw["structures"]["spleen"]["bbox_vox"] is None
    assert raw["structures"]["kidney_left"]["status"] == "incomplete"
    back = read_statistics(path)
    assert back.names == table.names
    assert back.shape == table.shape and back.spacing_mm == table.spacing_mm
    assert back["liver"] == table["liver"]
    assert math.isnan(back["spleen"].mean_hu)
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]  # no temp file left


def test_csv_has_one_flat_row_per_structure(table: StructureStatsTable, tmp_path: Path) -> None:
    path = write_statistics(table, tmp_path / "stats.csv")
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert tuple(rows[0]) == RECORD_COLUMNS
    by_name = {r["structure"]: r for r in rows}
    assert by_name["spleen"]["volume_ml"] == "" and by_name["spleen"]["status"] == "absent"
    assert float(by_name["liver"]["volume_mm3"]) == table["liver"].volume_mm3
    assert int(by_name["liver"]["bbox_i_min"]) == 4


def test_reference_layout_writes_zero_for_absent(
    table: StructureStatsTable, tmp_path: Path
) -> None:
    path = write_statistics(table, tmp_path / "statistics.json", format="reference")
    ref = read_reference_statistics(path)
    assert ref["spleen"].volume_mm3 == 0.0 and not ref["spleen"].reported
    assert ref["kidney_left"].volume_mm3 == 0.0  # border rule on: excluded like the reference
    assert ref["liver"].volume_ml == pytest.approx(table["liver"].volume_ml)


def test_reads_the_reference_extra_fields(tmp_path: Path) -> None:
    path = tmp_path / "statistics.json"
    path.write_text(
        json.dumps(
            {
                "liver": {
                    "volume": 1000.0,
                    "intensity": 50.0,
                    "n_voxels": 37,
                    "intensity_std": 3.0,
                    "intensity_min": 1.0,
                    "intensity_max": 90.0,
                    "centroid_vox": [1.0, 2.0, 3.0],
                    "bbox_vox": [[0, 3], [1, 4], [2, 5]],
                }
            }
        )
    )
    liver = read_reference_statistics(path)["liver"]
    assert (
        liver.n_voxels == 37 and liver.std_hu == 3.0 and liver.bbox_vox == ((0, 3), (1, 4), (2, 5))
    )


def test_unknown_suffix_is_an_input_error(table: StructureStatsTable, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"ending in \.json or \.csv"):
        write_statistics(table, tmp_path / "stats.txt")


def test_readers_reject_the_other_layout(table: StructureStatsTable, tmp_path: Path) -> None:
    native = write_statistics(table, tmp_path / "native.json")
    reference = write_statistics(table, tmp_path / "ref.json", format="reference")
    with pytest.raises(InputError, match=r"reference tool's statistics\.json"):
        read_reference_statistics(native)
    with pytest.raises(InputError, match="use read_reference_statistics"):
        read_statistics(reference)


def test_missing_and_damaged_files(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match="got no file"):
        read_statistics(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"liver": ')
    with pytest.raises(InputError, match="the file is damaged"):
        read_reference_statistics(broken)


def test_unknown_format_is_an_input_error(table: StructureStatsTable, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Expected format 'json', 'csv' or 'reference'"):
        write_statistics(table, tmp_path / "stats.json", format="xml")  # type: ignore[arg-type]
