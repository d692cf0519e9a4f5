"""Known-answer tests of the implicit shapes on voxel grids."""

from __future__ import annotations

import numpy as np
import pytest

from totalseg.phantom.primitives import Ellipsoid, HalfSpace, Loft, RoundedCylinder, Tube
from totalseg.phantom.shapes import FAR, GridView, Intersect, Offset, Scaled, Shell, Subtract, Union


def _view(spacing: float = 1.0, lo: float = -40.0, n: int = 81) -> GridView:
    a = np.diag([spacing, spacing, spacing])
    return GridView(a, np.array([lo, lo, lo]), (0, 0, 0), (n, n, n), pad=2.0)


def _volume_mm3(shape, view: GridView) -> float:
    d = np.broadcast_to(shape.sdf(view), view.shape)
    return float((d < 0).sum()) * float(abs(np.linalg.det(view.a)))


def test_sphere_volume_and_exact_distance():
    view = _view()
    sphere = Ellipsoid((0, 0, 0), (20.0, 20.0, 20.0))
    assert _volume_mm3(sphere, view) == pytest.approx(4 / 3 * np.pi * 20**3, rel=0.01)
    d = np.broadcast_to(sphere.sdf(view), view.shape)
    assert d[40, 40, 40] == pytest.approx(-20.0, abs=1e-4)  # centre
    assert d[40 + 21, 40, 40] == pytest.approx(1.0, abs=1e-4)  # 1 mm out (within the pad)
    assert d[40 + 30, 40, 40] == FAR  # beyond the box and its pad


def test_ellipsoid_volume_on_non_cubic_anisotropic_grid():
    a = np.diag([1.5, 0.8, 3.0])
    view = GridView(a, np.array([-45.0, -30.0, -60.0]), (0, 0, 0), (61, 77, 41))
    ell = Ellipsoid((2, -3, 5), (30.0, 18.0, 45.0))
    assert _volume_mm3(ell, view) == pytest.approx(4 / 3 * np.pi * 30 * 18 * 45, rel=0.02)


def test_tube_volume_is_cylinder_plus_caps():
    view = _view(0.8, -40.0, 101)
    tube = Tube([(-20, 0, 0), (0, 0, 0), (20, 0, 0)], 6.0)
    expected = np.pi * 36 * 40 + 4 / 3 * np.pi * 216
    assert _volume_mm3(tube, view) == pytest.approx(expected, rel=0.02)


def test_boolean_operations_volumes():
    view = _view()
    a = Ellipsoid((0, 0, 0), (20.0, 20.0, 20.0))
    half = HalfSpace((2.0, 0.0, 0.0), 1.0)  # x < 0.5: between voxel centres
    sphere = 4 / 3 * np.pi * 20**3
    slab = np.pi * 20**2 * 0.5
    assert _volume_mm3(Intersect(a, half), view) == pytest.approx(sphere / 2 + slab, rel=0.02)
    assert _volume_mm3(Subtract(a, half), view) == pytest.approx(sphere / 2 - slab, rel=0.02)
    b = Ellipsoid((25, 0, 0), (10.0, 10.0, 10.0))
    union = _volume_mm3(Union(a, b), view)
    assert union == pytest.approx(sphere + 4 / 3 * np.pi * 1000, rel=0.03)
    shell = _volume_mm3(Shell(a, 2.0), view)
    assert shell == pytest.approx(sphere - 4 / 3 * np.pi * 18**3, rel=0.06)
    grown = _volume_mm3(Offset(a, 5.0), view)
    assert grown == pytest.approx(4 / 3 * np.pi * 25**3, rel=0.02)


def test_scaled_shape_scales_volume_about_its_centre():
    view = _view()
    base = Ellipsoid((5, 0, 0), (10.0, 12.0, 14.0))
    vol = _volume_mm3(base, view)
    assert _volume_mm3(Scaled(base, (5, 0, 0), 1.5), view) == pytest.approx(vol * 1.5**3, rel=0.03)


def test_loft_is_an_elliptic_cylinder_for_constant_keys():
    view = _view(0.5, -25.0, 101)
    loft = Loft([-20.25, 20.25], [0, 0], [0, 0], [15, 15], [10, 10])
    assert _volume_mm3(loft, view) == pytest.approx(np.pi * 15 * 10 * 40.5, rel=0.02)


def test_rounded_cylinder_volume():
    view = _view(0.5, -20.0, 81)
    cyl = RoundedCylinder((0, 0, 0), 12.0, 8.0, 10.0, round_mm=0.5)
    assert _volume_mm3(cyl, view) == pytest.approx(np.pi * 12 * 8 * 20, rel=0.04)


def test_far_outside_the_box_and_sub_view_clipping():
    view = _view()
    small = Ellipsoid((30, 30, 30), (3.0, 3.0, 3.0))
    d = np.broadcast_to(small.sdf(view), view.shape)
    assert d[0, 0, 0] == FAR
    assert view.sub(np.array([500.0] * 3), np.array([600.0] * 3)) is None
    found = view.sub(np.array([-5.0, -5.0, -5.0]), np.array([5.0, 5.0, 5.0]))
    assert found is not None
    sub, slices = found
    assert all(s.start <= 40 < s.stop for s in slices)
    assert sub.shape == tuple(s.stop - s.start for s in slices)


def test_loft_rejects_unsorted_keys():
    with pytest.raises(ValueError, match="increase"):
        Loft([10, 0], [0, 0], [0, 0], [1, 1], [1, 1])
