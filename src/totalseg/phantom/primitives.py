"""Primitive implicit shapes: ellipsoid, rounded cylinder, half-space, loft, tube, dome.

See `shapes.py` for the grid views, the base class and the boolean operations.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from totalseg.phantom.shapes import FAR, Array, GridView, Shape

__all__ = ["Dome", "Ellipsoid", "HalfSpace", "Loft", "RoundedCylinder", "Tube"]

_F = np.float32


def _ellipsoid_distance(u: Array, v: Array, w: Array, radii: np.ndarray) -> Array:
    """Distance to an axis-aligned ellipsoid.

    Near the surface: k0 (k0 - 1) / k1 (first order, accurate). Deep inside that tends to 0,
    so inside we take the deeper of it and (k0 - 1) * r_min, a lower bound of the true depth
    that is exact at the centre.
    """
    rx, ry, rz = (float(r) for r in radii)
    k0 = np.sqrt((u / rx) ** 2 + (v / ry) ** 2 + (w / rz) ** 2)
    k1 = np.sqrt((u / rx**2) ** 2 + (v / ry**2) ** 2 + (w / rz**2) ** 2)
    k1 = np.maximum(k1, _F(1e-6))
    d = k0 * (k0 - 1) / k1
    deep = (k0 - 1) * _F(min(rx, ry, rz))
    return np.where(k0 < 1, np.minimum(d, deep), d).astype(np.float32, copy=False)


class Ellipsoid(Shape):
    """Ellipsoid with semi-axes `radii`, optionally rotated (columns of `axes` = its axes)."""

    def __init__(
        self,
        center: npt.ArrayLike,
        radii: npt.ArrayLike,
        axes: np.ndarray | None = None,
    ) -> None:
        self.center = np.asarray(center, dtype=np.float64)
        self.radii = np.asarray(radii, dtype=np.float64)
        self.axes = None if axes is None else np.asarray(axes, dtype=np.float64)
        if self.axes is None:
            ext = self.radii
        else:
            ext = np.sqrt(((self.axes * self.radii[None, :]) ** 2).sum(axis=1))
        self._set_box(self.center - ext, self.center + ext)

    def _sdf(self, view: GridView) -> Array:
        if self.axes is None:
            x, y, z = view.coords()
            c = self.center
            return _ellipsoid_distance(x - _F(c[0]), y - _F(c[1]), z - _F(c[2]), self.radii)
        u, v, w = view.transformed(self.axes.T, self.center).coords()
        return _ellipsoid_distance(u, v, w, self.radii)


class RoundedCylinder(Shape):
    """Elliptic cylinder along z (semi-axes rx, ry; half height hz) with rounded rims."""

    def __init__(
        self, center: npt.ArrayLike, rx: float, ry: float, hz: float, round_mm: float = 2.0
    ) -> None:
        self.center = np.asarray(center, dtype=np.float64)
        self.rx, self.ry, self.hz, self.rr = float(rx), float(ry), float(hz), float(round_mm)
        ext = np.array([rx, ry, hz])
        self._set_box(self.center - ext, self.center + ext)

    def _sdf(self, view: GridView) -> Array:
        x, y, z = view.coords()
        c, rr = self.center, self.rr
        u, v = (x - _F(c[0])) / _F(self.rx), (y - _F(c[1])) / _F(self.ry)
        radial = (np.sqrt(u * u + v * v) - 1) * _F(min(self.rx, self.ry)) + _F(rr)
        vertical = np.abs(z - _F(c[2])) - _F(self.hz - rr)
        inner = np.minimum(np.maximum(radial, vertical), 0)
        np.maximum(radial, 0, out=radial)
        vertical = np.maximum(vertical, 0)
        radial = radial * radial + vertical * vertical
        np.sqrt(radial, out=radial)
        radial += inner - _F(rr)
        return radial


class HalfSpace(Shape):
    """Points with normal . p < offset (both divided by |normal|); unbounded."""

    def __init__(self, normal: npt.ArrayLike, offset: float) -> None:
        n = np.asarray(normal, dtype=np.float64)
        norm = float(np.linalg.norm(n))
        self.normal = n / norm
        self.offset = float(offset) / norm
        self._set_box([-np.inf] * 3, [np.inf] * 3)

    def _sdf(self, view: GridView) -> Array:
        x, y, z = view.coords()
        n = self.normal
        return (_F(n[0]) * x + _F(n[1]) * y + _F(n[2]) * z - _F(self.offset)).astype(
            np.float32, copy=False
        )

    def sdf(self, view: GridView) -> Array:
        return self._sdf(view)


class Loft(Shape):
    """Stack of ellipses along z: centre (cx, cy) and semi-axes (ax, ay) interpolated over z keys.

    `power` 2 gives ellipses, 4 rounded rectangles (values in between blend the two).
    """

    def __init__(
        self,
        z: npt.ArrayLike,
        cx: npt.ArrayLike,
        cy: npt.ArrayLike,
        ax: npt.ArrayLike,
        ay: npt.ArrayLike,
        power: float = 2.0,
    ) -> None:
        self.keys = np.array([z, cx, cy, ax, ay], dtype=np.float64)
        if np.any(np.diff(self.keys[0]) <= 0):
            raise ValueError("Loft z keys must increase")
        self.power = float(power)
        zs, cxs, cys, axs, ays = self.keys
        self._set_box(
            [float((cxs - axs).min()), float((cys - ays).min()), float(zs[0])],
            [float((cxs + axs).max()), float((cys + ays).max()), float(zs[-1])],
        )

    def _sdf(self, view: GridView) -> Array:
        x, y, z = view.coords()
        zs, cxs, cys, axs, ays = self.keys
        zz = np.clip(z, zs[0], zs[-1])
        cx, cy, ax, ay = (np.interp(zz, zs, k).astype(np.float32) for k in (cxs, cys, axs, ays))
        shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
        u = np.empty(shape, dtype=np.float32)  # all arithmetic in place: big boxes
        v = np.empty(shape, dtype=np.float32)
        np.subtract(x, cx, out=u)
        u *= _F(1) / ax
        np.subtract(y, cy, out=v)
        v *= _F(1) / ay
        u *= u
        v *= v
        q = None
        if self.power > 2.0:
            w = _F(min((self.power - 2.0) / 2.0, 1.0))
            q = u * u
            q += v * v
            np.sqrt(q, out=q)
            np.sqrt(q, out=q)
            q *= w
        u += v
        del v
        np.sqrt(u, out=u)
        if q is not None:
            u *= _F(1) - w
            u += q
            del q
        u -= _F(1)
        u *= np.minimum(ax, ay)
        np.maximum(u, np.maximum(_F(zs[0]) - z, z - _F(zs[-1])), out=u)
        return u


class Tube(Shape):
    """Union of round cones along a polyline: points (N, 3) with radii (N,)."""

    def __init__(self, points: np.ndarray | npt.ArrayLike, radii: npt.ArrayLike):
        self.points = np.asarray(points, dtype=np.float64)
        r = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(self.points),))
        self.radii = np.array(r)
        if len(self.points) < 2:
            raise ValueError("a Tube needs at least two points")
        self._set_box(
            (self.points - self.radii[:, None]).min(axis=0),
            (self.points + self.radii[:, None]).max(axis=0),
        )
        ab = np.diff(self.points, axis=0)
        inv = 1.0 / np.maximum((ab**2).sum(axis=1), 1e-9)
        # per-segment columns for the vectorised path: a, ab, 1/|ab|^2, r_a, r_b - r_a
        self._cols = [
            np.asarray(v, dtype=np.float32).reshape(-1, 1, 1, 1)
            for v in (*self.points[:-1].T, *ab.T, inv, self.radii[:-1], np.diff(self.radii))
        ]

    def _sdf(self, view: GridView) -> Array:
        n_seg = len(self.points) - 1
        if n_seg * int(np.prod(view.shape)) <= 300_000:
            return self._sdf_all(view)
        out = np.full(view.shape, FAR, dtype=np.float32)
        for s in range(n_seg):
            a, b = self.points[s], self.points[s + 1]
            ra, rb = self.radii[s], self.radii[s + 1]
            rmax = max(ra, rb)
            found = view.sub(np.minimum(a, b) - rmax, np.maximum(a, b) + rmax)
            if found is None:
                continue
            sub, sl = found
            x, y, z = sub.coords()
            ab = b - a
            inv = 1.0 / max(float(ab @ ab), 1e-9)
            px, py, pz = x - _F(a[0]), y - _F(a[1]), z - _F(a[2])
            t = (px * _F(ab[0]) + py * _F(ab[1]) + pz * _F(ab[2])) * _F(inv)
            np.clip(t, 0, 1, out=t)
            dx, dy, dz = px - t * _F(ab[0]), py - t * _F(ab[1]), pz - t * _F(ab[2])
            d = np.sqrt(dx * dx + dy * dy + dz * dz) - (_F(ra) + t * _F(rb - ra))
            np.minimum(out[sl], d, out=out[sl])
        return out

    def _sdf_all(self, view: GridView) -> Array:
        """All segments at once with a leading segment axis (small boxes: less overhead)."""
        x, y, z = view.coords()
        ax, ay, az, bx, by, bz, inv, ra, dr = self._cols
        px, py, pz = x[None] - ax, y[None] - ay, z[None] - az
        t = (px * bx + py * by + pz * bz) * inv
        np.clip(t, 0, 1, out=t)
        px, py, pz = px - t * bx, py - t * by, pz - t * bz
        d = np.sqrt(px * px + py * py + pz * pz) - (ra + t * dr)
        return np.broadcast_to(d.min(axis=0), view.shape)


class Dome(Shape):
    """Everything below a surface z = max over peaks of paraboloids (e.g. the diaphragm).

    Each peak is (x0, y0, z0); the surface drops by kx (x - x0)^2 sideways and by ky_front or
    ky_back (y - y0)^2 forwards or backwards. Bounded by the box lo..hi.
    """

    def __init__(
        self,
        peaks: npt.ArrayLike,
        *,
        kx: float,
        ky_front: float,
        ky_back: float,
        lo: npt.ArrayLike,
        hi: npt.ArrayLike,
    ) -> None:
        self.peaks = np.asarray(peaks, dtype=np.float64)
        self.kx, self.kyf, self.kyb = float(kx), float(ky_front), float(ky_back)
        self._set_box(lo, hi)

    def _sdf(self, view: GridView) -> Array:
        x, y, z = view.coords()
        best = None
        gx = gy = None
        for x0, y0, z0 in self.peaks:
            dx, dy = x - _F(x0), y - _F(y0)
            ky = np.where(dy > 0, _F(self.kyf), _F(self.kyb))
            h = _F(z0) - _F(self.kx) * dx * dx - ky * dy * dy
            if best is None:
                best, gx, gy = h, -2 * _F(self.kx) * dx, -2 * ky * dy
            else:
                take = h > best
                best = np.where(take, h, best)
                gx = np.where(take, -2 * _F(self.kx) * dx, gx)
                gy = np.where(take, -2 * ky * dy, gy)
        assert best is not None and gx is not None and gy is not None
        return ((z - best) / np.sqrt(1 + gx * gx + gy * gy)).astype(np.float32, copy=False)
