"""Implicit shapes (approximate signed distance functions, mm) evaluated on boxes of a voxel grid.

A `GridView` is a box of voxels of the render grid together with the affine map from voxel
indices to the frame a shape is defined in. Shapes evaluate only inside their bounding box and
report `FAR` elsewhere, so a structure costs what its box costs. Coordinates come out as
broadcastable arrays: with no rotation that mixes z into x/y the arrays stay 1D/2D and the
arithmetic is cheap. Negative distance = inside. Distances are exact for spheres and planes and
good approximations (accurate near the surface) for everything else; partial volume only needs
them near the surface.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "FAR",
    "Array",
    "Displace",
    "GridView",
    "Intersect",
    "Offset",
    "Scaled",
    "Shape",
    "Shell",
    "SmoothUnion",
    "Subtract",
    "Transformed",
    "Union",
    "axes_from",
    "memoized",
    "rotation_matrix",
]

FAR = np.float32(1e4)
_F = np.float32
Array = npt.NDArray[np.float32]


def rotation_matrix(axis: npt.ArrayLike, angle_rad: float) -> np.ndarray:
    """Rotation by `angle_rad` about `axis` (right-hand rule), as a 3x3 matrix."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * (k @ k)


@dataclass(frozen=True)
class GridView:
    """Voxels lo..hi (exclusive) of a grid; frame coordinates = a @ (i, j, k) + b."""

    a: np.ndarray
    b: np.ndarray
    lo: tuple[int, int, int]
    hi: tuple[int, int, int]
    pad: float = 3.0
    ainv: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.ainv is None:
            object.__setattr__(self, "ainv", np.linalg.inv(self.a))

    @property
    def key(self) -> tuple[object, ...]:
        return (self.lo, self.hi, self.pad, self.a.tobytes(), self.b.tobytes())

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.hi[0] - self.lo[0], self.hi[1] - self.lo[1], self.hi[2] - self.lo[2])

    def coords(self) -> tuple[Array, Array, Array]:
        """Broadcastable frame coordinates X, Y, Z of the view's voxel centres."""
        idx = [
            np.arange(self.lo[d], self.hi[d], dtype=np.float32).reshape(
                [-1 if e == d else 1 for e in range(3)]
            )
            for d in range(3)
        ]
        out = []
        for row in range(3):
            acc: Array = np.full((1, 1, 1), self.b[row], dtype=np.float32)
            for d in range(3):
                coef = float(self.a[row, d])
                if abs(coef) > 1e-9:
                    acc = acc + _F(coef) * idx[d]
            out.append(acc)
        return out[0], out[1], out[2]

    def transformed(self, matrix: np.ndarray, center: np.ndarray) -> GridView:
        """The same voxels seen in the frame q = matrix @ (p - center)."""
        m = np.asarray(matrix, dtype=np.float64)
        return GridView(m @ self.a, m @ (self.b - center), self.lo, self.hi, self.pad)

    def padded(self, pad: float) -> GridView:
        return GridView(self.a, self.b, self.lo, self.hi, pad, self.ainv)

    def sub(
        self, lo_mm: np.ndarray, hi_mm: np.ndarray
    ) -> tuple[GridView, tuple[slice, slice, slice]] | None:
        """The part of this view within a frame box (padded), and its slices in this view."""
        lo_mm = np.maximum(lo_mm, -1e7)
        hi_mm = np.minimum(hi_mm, 1e7)
        ainv: np.ndarray = self.ainv  # type: ignore[assignment]
        center = ainv @ (0.5 * (lo_mm + hi_mm) - self.b)
        reach = np.abs(ainv) @ (0.5 * (hi_mm - lo_mm) + self.pad)
        first, last = np.floor(center - reach), np.ceil(center + reach) + 1
        new_lo = (
            max(self.lo[0], int(first[0])),
            max(self.lo[1], int(first[1])),
            max(self.lo[2], int(first[2])),
        )
        new_hi = (
            min(self.hi[0], int(last[0])),
            min(self.hi[1], int(last[1])),
            min(self.hi[2], int(last[2])),
        )
        if new_hi[0] <= new_lo[0] or new_hi[1] <= new_lo[1] or new_hi[2] <= new_lo[2]:
            return None
        view = GridView(self.a, self.b, new_lo, new_hi, self.pad, self.ainv)
        slices = (
            slice(new_lo[0] - self.lo[0], new_hi[0] - self.lo[0]),
            slice(new_lo[1] - self.lo[1], new_hi[1] - self.lo[1]),
            slice(new_lo[2] - self.lo[2], new_hi[2] - self.lo[2]),
        )
        return view, slices


_MEMO: dict[tuple[object, ...], Array] = {}
_MEMO_ON = [False]


class memoized:
    """Within this context, shapes with `memo = True` reuse results for identical views."""

    def __enter__(self) -> None:
        _MEMO.clear()
        _MEMO_ON[0] = True

    def __exit__(self, *exc: object) -> None:
        _MEMO.clear()
        _MEMO_ON[0] = False


class Shape:
    """Base class: a bounding box (frame mm) and an approximate signed distance."""

    lo: np.ndarray
    hi: np.ndarray
    memo: bool = False

    def remembered(self) -> Shape:
        """Mark this shape for reuse of its results within `memoized()` (big shared shapes)."""
        self.memo = True
        return self

    def _set_box(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> None:
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)

    def _sdf(self, view: GridView) -> Array:
        raise NotImplementedError

    def sdf(self, view: GridView) -> Array:
        """Signed distance on every voxel of `view` (broadcastable to view.shape); FAR far away."""
        found = view.sub(self.lo, self.hi)
        if found is None:
            return np.full((1, 1, 1), FAR, dtype=np.float32)
        sub, slices = found
        if self.memo and _MEMO_ON[0]:
            key = (id(self), *view.key)
            if key not in _MEMO:
                if len(_MEMO) > 6:
                    _MEMO.pop(next(iter(_MEMO)))
                _MEMO[key] = self._sdf_in(view, sub, slices)
            return _MEMO[key]
        return self._sdf_in(view, sub, slices)

    def _sdf_in(self, view: GridView, sub: GridView, slices: tuple[slice, slice, slice]) -> Array:
        if sub.shape == view.shape:
            return self._sdf(view)
        out = np.full(view.shape, FAR, dtype=np.float32)
        out[slices] = self._sdf(sub)
        return out

    def min_into(self, out: Array, view: GridView) -> None:
        """out = min(out, sdf) evaluating only inside this shape's box (out has view.shape)."""
        found = view.sub(self.lo, self.hi)
        if found is not None:
            sub, sl = found
            np.minimum(out[sl], self.sdf(sub), out=out[sl])

    def max_neg_into(self, out: Array, view: GridView) -> None:
        """out = max(out, -sdf) (subtraction) evaluating only inside this shape's box."""
        found = view.sub(self.lo, self.hi)
        if found is not None:
            sub, sl = found
            np.maximum(out[sl], -self.sdf(sub), out=out[sl])

    # sugar for building anatomy
    def __or__(self, other: Shape) -> Shape:
        return Union(self, other)

    def __and__(self, other: Shape) -> Shape:
        return Intersect(self, other)

    def __sub__(self, other: Shape) -> Shape:
        return Subtract(self, other)


class Transformed(Shape):
    """A child shape defined in a local frame: local = matrix @ (p - center).

    `matrix` = (rotation.T / scale); distances are scaled back by `scale`.
    """

    def __init__(
        self,
        child: Shape,
        center: npt.ArrayLike,
        rotation: np.ndarray | None = None,
        scale: npt.ArrayLike = 1.0,
    ) -> None:
        self.child = child
        self.center = np.asarray(center, dtype=np.float64)
        rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
        s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (3,))
        self.matrix = np.diag(1.0 / s) @ rot.T
        self.dist_scale = float(s.min())
        corners = np.array(
            [
                [x, y, z]
                for x in (child.lo[0], child.hi[0])
                for y in (child.lo[1], child.hi[1])
                for z in (child.lo[2], child.hi[2])
            ]
        )
        world = corners @ np.linalg.inv(self.matrix).T + self.center
        self._set_box(world.min(axis=0), world.max(axis=0))

    def _sdf(self, view: GridView) -> Array:
        local = view.transformed(self.matrix, self.center)
        local = GridView(local.a, local.b, local.lo, local.hi, view.pad / self.dist_scale)
        return (self.child.sdf(local) * _F(self.dist_scale)).astype(np.float32, copy=False)


class Union(Shape):
    def __init__(self, *children: Shape) -> None:
        self.children = children
        self._set_box(
            np.min([c.lo for c in children], axis=0), np.max([c.hi for c in children], axis=0)
        )

    def _sdf(self, view: GridView) -> Array:
        out = np.full(view.shape, FAR, dtype=np.float32)
        for c in self.children:
            c.min_into(out, view)
        return out


class SmoothUnion(Union):
    """Union with a fillet of width `k_mm` where the children meet (polynomial smooth min)."""

    def __init__(self, *children: Shape, k_mm: float = 10.0) -> None:
        super().__init__(*children)
        self.k = float(k_mm)

    def _sdf(self, view: GridView) -> Array:
        k = _F(self.k)
        out = self.children[0].sdf(view)
        for c in self.children[1:]:
            d = c.sdf(view)
            h = np.maximum(k - np.abs(out - d), 0) / k
            out = np.minimum(out, d) - h * h * k * _F(0.25)
        return out


class Intersect(Shape):
    def __init__(self, *children: Shape) -> None:
        self.children = children
        self._set_box(
            np.max([c.lo for c in children], axis=0), np.min([c.hi for c in children], axis=0)
        )

    def _sdf(self, view: GridView) -> Array:
        out = self.children[0].sdf(view)
        for c in self.children[1:]:
            out = np.maximum(out, c.sdf(view))
        return out


class Subtract(Shape):
    def __init__(self, base: Shape, *cut: Shape) -> None:
        self.base, self.cut = base, cut
        self._set_box(base.lo, base.hi)

    def _sdf(self, view: GridView) -> Array:
        out = np.array(np.broadcast_to(self.base.sdf(view), view.shape), dtype=np.float32)
        for c in self.cut:
            c.max_neg_into(out, view)
        return out


class Offset(Shape):
    """Grow (positive) or shrink (negative) a shape by `mm`."""

    def __init__(self, child: Shape, mm: float) -> None:
        self.child, self.mm = child, float(mm)
        self._set_box(child.lo - max(self.mm, 0.0), child.hi + max(self.mm, 0.0))

    def _sdf(self, view: GridView) -> Array:
        return self.child.sdf(view.padded(view.pad + max(self.mm, 0.0))) - _F(self.mm)


class Shell(Shape):
    """The inner layer of a shape, `thickness_mm` thick."""

    def __init__(self, child: Shape, thickness_mm: float) -> None:
        self.child, self.t = child, float(thickness_mm)
        self._set_box(child.lo, child.hi)

    def _sdf(self, view: GridView) -> Array:
        d = self.child.sdf(view)
        return np.maximum(d, -d - _F(self.t))


class Displace(Shape):
    """A shape whose surface is pushed in and out by a smooth random field (sum of waves)."""

    def __init__(
        self,
        child: Shape,
        rng: np.random.Generator,
        amplitude_mm: float,
        wavelength_mm: float = 60.0,
        n_waves: int = 3,
    ) -> None:
        self.child, self.amp = child, float(amplitude_mm)
        dirs = rng.normal(size=(n_waves, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        lengths = wavelength_mm * rng.uniform(0.7, 1.4, size=n_waves)
        self.k = dirs * (2 * np.pi / lengths)[:, None]
        self.phase = rng.uniform(0, 2 * np.pi, size=n_waves)
        self._set_box(child.lo - self.amp, child.hi + self.amp)

    def _sdf(self, view: GridView) -> Array:
        inner = view.padded(view.pad + self.amp)
        d = self.child.sdf(inner)
        x, y, z = view.coords()
        field = np.zeros((1, 1, 1), dtype=np.float32)
        for kv, ph in zip(self.k, self.phase, strict=False):
            field = field + np.sin(_F(kv[0]) * x + _F(kv[1]) * y + _F(kv[2]) * z + _F(ph))
        return d + field * _F(self.amp / np.sqrt(len(self.k)))


class Scaled(Shape):
    """A child shape scaled by `factor` about `center` (both in the child's frame)."""

    def __init__(self, child: Shape, center: npt.ArrayLike, factor: float) -> None:
        self.child, self.f = child, float(factor)
        self.center = np.asarray(center, dtype=np.float64)
        c = self.center
        self._set_box(c + (child.lo - c) * self.f, c + (child.hi - c) * self.f)

    def _sdf(self, view: GridView) -> Array:
        f, c = self.f, self.center
        inner = GridView(view.a / f, (view.b - c) / f + c, view.lo, view.hi, view.pad / f)
        return (self.child.sdf(inner) * _F(f)).astype(np.float32, copy=False)


def axes_from(first: npt.ArrayLike, hint: npt.ArrayLike) -> np.ndarray:
    """Orthonormal axes as matrix columns: `first` normalised, the second as close to `hint`."""
    a = np.asarray(first, dtype=np.float64)
    a = a / np.linalg.norm(a)
    h = np.asarray(hint, dtype=np.float64)
    b = h - (h @ a) * a
    b = b / np.linalg.norm(b)
    return np.stack([a, b, np.cross(a, b)], axis=1)
