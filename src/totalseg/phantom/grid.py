"""Output grids: field of view, spacing, the world <-> reference-frame map and orientation codes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

from totalseg.phantom.params import SubjectParams
from totalseg.phantom.shapes import GridView

__all__ = [
    "FOV_Z_MM",
    "WORLD_Z_OFFSET_MM",
    "RenderGrid",
    "fov_extent_mm",
    "reorient",
]

#: Reference-frame z range (mm) of each field of view, before the random margin.
FOV_Z_MM = {
    "whole-body": (470.0, 1762.0),
    "thorax-abdomen": (812.0, 1482.0),
    "abdomen": (822.0, 1262.0),
}
#: Reference-frame z that lands at world z = 0 (a scanner-like origin near the diaphragm).
WORLD_Z_OFFSET_MM = 1250.0


def _rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _world_from_ref(params: SubjectParams) -> tuple[np.ndarray, np.ndarray]:
    """world = m @ ref + t. World is RAS+ (x grows to the patient's right), the reference
    frame has x growing to the patient's left, hence the flip of x."""
    sx, sy, sz = params.scale
    m = _rot_z(params.roll_deg) @ np.diag([-sx, sy, sz])
    t = np.asarray(params.shift_mm, dtype=np.float64) - m @ np.array([0.0, 0.0, WORLD_Z_OFFSET_MM])
    return m, t


def fov_extent_mm(params: SubjectParams) -> tuple[np.ndarray, np.ndarray]:
    """A conservative world box (lo, hi) of the field of view, before fitting it to the body."""
    m, t = _world_from_ref(params)
    z0, z1 = FOV_Z_MM[params.fov]
    jitter = params.fov_margin_mm[2]
    z0, z1 = z0 - 0.5 * jitter, z1 + 0.5 * jitter
    corners = np.array(
        [[x, y, z] for x in (-330.0, 330.0) for y in (-260.0, 200.0) for z in (z0, z1)]
    )
    world = corners @ m.T + t
    lo, hi = world.min(axis=0), world.max(axis=0)
    zs = np.array([z0, z1]) * params.scale[2] + t[2]
    lo[2], hi[2] = zs.min(), zs.max()
    return lo, hi


@dataclass(frozen=True)
class RenderGrid:
    """An axis-aligned RAS world grid and the map from its voxel indices to the reference frame."""

    shape: tuple[int, int, int]
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    params: SubjectParams

    @classmethod
    def covering(
        cls, params: SubjectParams, lo: np.ndarray, hi: np.ndarray, spacing_mm: tuple[float, ...]
    ) -> RenderGrid:
        sp = np.asarray(spacing_mm, dtype=np.float64)
        n = np.maximum(np.ceil((np.asarray(hi) - np.asarray(lo)) / sp).astype(int) + 1, 1)
        return cls(
            (int(n[0]), int(n[1]), int(n[2])),
            (float(lo[0]), float(lo[1]), float(lo[2])),
            (float(sp[0]), float(sp[1]), float(sp[2])),
            params,
        )

    @property
    def affine(self) -> np.ndarray:
        a = np.diag([*self.spacing_mm, 1.0])
        a[:3, 3] = self.origin_mm
        return a

    @property
    def distance_scale(self) -> float:
        """Reference-frame mm -> world mm for distances (geometric mean of the body scale)."""
        return float(np.prod(self.params.scale) ** (1.0 / 3.0))

    def view(self, pad_mm: float) -> GridView:
        """The whole grid as a view in reference-frame coordinates."""
        m, t = _world_from_ref(self.params)
        minv = np.linalg.inv(m)
        a = minv @ np.diag(self.spacing_mm)
        b = minv @ (np.asarray(self.origin_mm) - t)
        return GridView(a, b, (0, 0, 0), self.shape, pad_mm / self.distance_scale)

    def world_coords(self, axis: int) -> np.ndarray:
        return self.origin_mm[axis] + self.spacing_mm[axis] * np.arange(self.shape[axis])


def reorient(array: np.ndarray, affine: np.ndarray, code: str) -> tuple[np.ndarray, np.ndarray]:
    """Store a RAS-ordered array in another orientation; world coordinates stay the same."""
    ornt = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(tuple(code)))
    out = np.ascontiguousarray(apply_orientation(array, ornt))
    new_affine = affine @ inv_ornt_aff(ornt, array.shape)
    return out, new_affine
