"""The CT plausibility check: refusals, warnings, force."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from totalseg.errors import InputError
from totalseg.image import Image
from totalseg.preprocess.plausibility import check_ct, inspect_ct


def _ct(shape=(20, 20, 20)) -> np.ndarray:
    ct = np.full(shape, -1000, np.int16)
    ct[5:15, 5:15, 5:15] = 40
    return ct


def _image(array: np.ndarray) -> Image:
    return Image(array, np.eye(4))


@pytest.mark.parametrize(
    ("array", "found"),
    [
        (np.zeros((1, 1, 1), np.int16), "tiny image of 1x1x1"),
        (_ct((40, 40, 1)), "tiny image of 40x40x1"),
        (np.zeros((20, 20, 20), np.int16), "constant image (every voxel is 0)"),
        (np.where(_ct() > 0, np.nan, _ct()).astype(np.float32), "1000 NaN or infinite"),
        (_ct().astype(np.int64) * 10**15, "far outside any CT range"),
        (np.linspace(0, 1500, 8000).reshape(20, 20, 20), "no value below 0"),
    ],
)
def test_refusals(array: np.ndarray, found: str) -> None:
    assert found in str(inspect_ct(_image(array)).refusal)
    with pytest.raises(InputError, match=r"Expected a CT image in HU, got .*--force"):
        check_ct(_image(array), where="'x'")


def test_plausible_ct_and_warnings(caplog: pytest.LogCaptureFixture) -> None:
    assert (
        inspect_ct(_image(_ct())) == inspect_ct(_image(_ct()))
        and not inspect_ct(_image(_ct())).warnings
    )
    no_air = np.clip(_ct(), -500, None)
    high = np.where(_ct() > 0, 5000, _ct()).astype(np.int16)
    with caplog.at_level(logging.WARNING, logger="totalseg.preprocess.plausibility"):
        check_ct(_image(no_air), where="'a'")
        check_ct(_image(high), where="'b'")
        check_ct(_image(np.zeros((20, 20, 20), np.int16)), where="'c'", force=True)
    lines = caplog.text.strip().splitlines()
    assert len(lines) == 3 and "no air" in lines[0] and "beyond the CT scale" in lines[1]
    assert "constant image" in lines[2] and "(--force)" in lines[2]
