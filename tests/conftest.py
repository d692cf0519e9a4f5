"""Shared fixtures: affines in several orientations, non-cubic shapes, the shared real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NON_CUBIC_SHAPE = (23, 31, 17)


def affine_for(codes: str, spacing_mm=(1.5, 0.8, 3.0), origin_mm=(10.0, -20.0, 30.0)) -> np.ndarray:
    """An axis-aligned affine whose i, j, k axes point along the given axcodes (e.g. 'PIR')."""
    from nibabel.orientations import axcodes2ornt

    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for i, (axis, flip) in enumerate(axcodes2ornt(tuple(codes))):
        affine[int(axis), i] = flip * spacing_mm[i]
    affine[:3, 3] = origin_mm
    return affine


def oblique_affine(spacing_mm=(1.2, 0.9, 2.5)) -> np.ndarray:
    """An affine rotated ~20 degrees about two axes (LPS-ish)."""
    a, b = np.deg2rad(20.0), np.deg2rad(-12.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag([-1, -1, 1]) @ np.diag(spacing_mm)
    affine[:3, 3] = (-50.0, 30.0, -100.0)
    return affine


AFFINES = {
    "RAS": affine_for("RAS"),
    "LPS": affine_for("LPS"),
    "PIR": affine_for("PIR"),
    "LAS": affine_for("LAS"),
    "oblique": oblique_affine(),
}


@pytest.fixture(autouse=True)
def _no_foreign_weights(monkeypatch, tmp_path_factory):
    """No test reaches the network for weights or finds a TotalSegmentator install of the
    machine: downloads are off (TOTALSEG_OFFLINE=1; download tests lift it) and the reference
    tool's weights folder points to an empty place (tests that discover one set it)."""
    monkeypatch.setenv("TOTALSEG_OFFLINE", "1")
    monkeypatch.delenv("TOTALSEG_HOME_DIR", raising=False)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path_factory.getbasetemp() / "no-ts"))


@pytest.fixture(params=sorted(AFFINES))
def any_affine(request) -> np.ndarray:
    return AFFINES[request.param]


@pytest.fixture
def shared_data() -> Path:
    """The real CT data beside the project; skips when absent (a fresh clone alone)."""
    folder = SHARED_DATA / "totalsegmentator"
    if not folder.is_dir():
        pytest.skip(f"real CT data not found at {folder} (../shared/data beside the project)")
    return folder


@pytest.fixture
def make_affine():
    """The `affine_for(codes, spacing_mm, origin_mm)` builder, for tests that need their own."""
    return affine_for
