"""SegmentOptions: one typed object for the CLI and the API, checked on creation."""

from __future__ import annotations

from pathlib import Path

import pytest

import totalseg
from totalseg.errors import ConfigError
from totalseg.options import SegmentOptions, option_names


def test_defaults_and_normalisation() -> None:
    opts = SegmentOptions(roi_subset=["liver,spleen", " aorta "], model_dir="m", home="h")
    assert opts.roi_subset == ("liver", "spleen", "aorta")
    assert opts.model_dir == Path("m") and opts.home == Path("h")
    assert SegmentOptions(roi_subset="liver").roi_subset == ("liver",)
    assert SegmentOptions().task == "total" and not SegmentOptions().multilabel


def test_replace_and_from_fields_refuse_unknown_names_with_a_hint() -> None:
    opts = SegmentOptions()
    assert opts.replace(task="total-fast").task == "total-fast"
    with pytest.raises(ConfigError, match=r"Unknown segment option 'roi_subst'.*'roi_subset'"):
        opts.replace(roi_subst=["liver"])
    with pytest.raises(ConfigError, match=r"Unknown segment option 'devise'.*'device'"):
        SegmentOptions.from_fields({"devise": "cpu"})
    assert "tile_step" in option_names()


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"tile_step": 0.0}, r"tile step in \(0, 1\], got 0.0"),
        ({"batch_size": 0}, "batch size >= 1, got 0"),
        ({"parity": True, "batch_size": 2}, "batch size 1 in parity mode, got 2"),
        ({"parity": True, "accumulate_fp32": True}, "nnU-Net's arithmetic in parity mode"),
        ({"n_threads": 0}, "n_threads >= 1, got 0"),
        ({"resampling_order": 7}, "resampling order in 0..5, got 7"),
        ({"roi_crop_margin_mm": -1.0}, "roi_crop_margin_mm >= 0, got -1.0"),
        ({"roi_subset": [",", " "]}, "at least one structure name"),
        ({"task": ""}, "Expected a task name"),
    ],
)
def test_bad_values_are_refused(fields, match) -> None:
    with pytest.raises(ConfigError, match=match):
        SegmentOptions(**fields)


def test_public_api_exposes_the_options() -> None:
    assert totalseg.SegmentOptions is SegmentOptions
    assert callable(totalseg.run_segment)
