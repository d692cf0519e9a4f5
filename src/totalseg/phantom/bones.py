"""Ribs, costal cartilages, sternum, shoulder girdle, arms, pelvis and legs."""

from __future__ import annotations

import math

import numpy as np

from totalseg.phantom.body import Body, spine_levels
from totalseg.phantom.primitives import Ellipsoid, HalfSpace, Loft, Tube
from totalseg.phantom.shapes import Intersect, Shape, Subtract, Union, rotation_matrix
from totalseg.phantom.spine import ORDER_BONE, canal_center

__all__ = ["RIBS", "STERNUM_KEYS", "add_bones", "arm_points", "rib_path"]

#: rib -> (half width W, half depth D, drop along the rib, end angle, radius), reference frame
RIBS = {
    1: (62, 52, 30, 2.55, 5.0), 2: (92, 72, 45, 2.45, 4.6), 3: (110, 85, 60, 2.35, 4.6),
    4: (122, 94, 70, 2.3, 4.6), 5: (131, 100, 75, 2.3, 4.6), 6: (137, 104, 78, 2.3, 4.6),
    7: (141, 106, 80, 2.25, 4.5), 8: (143, 106, 82, 2.1, 4.3), 9: (143, 104, 80, 1.95, 4.1),
    10: (140, 101, 75, 1.8, 4.0), 11: (135, 97, 55, 1.45, 3.8), 12: (126, 92, 35, 1.05, 3.5),
}  # fmt: skip
_STERNAL_Z = {1: 1402, 2: 1378, 3: 1352, 4: 1326, 5: 1298, 6: 1270, 7: 1248}

#: sternum loft keys: z, cy, half width, half depth (cx = 0)
STERNUM_KEYS = np.array(
    [[1222, 92, 6, 4], [1240, 94, 12, 5.5], [1300, 94, 15, 6.5], [1368, 89, 15, 6.5],
     [1378, 87, 24, 7.5], [1400, 82, 27, 8.5], [1414, 79, 20, 7.5]],
    dtype=np.float64,
)  # fmt: skip

SHOULDER = (185.0, -25.0, 1420.0)


def rib_path(k: int, side: float) -> np.ndarray:
    """Centre line of rib k on one side (+1 left, -1 right): (N, 3) points, posterior first."""
    w, d, drop, phi_end, _r = RIBS[k]
    z, y, hh, rx, _ry = spine_levels()[f"T{k}"]
    cc = canal_center(f"T{k}")
    head = (side * (rx + 2.0), y - 3.0, z + hh)
    tubercle = (side * 30.0, cc[1] - 1.0, z + 3.0)
    phi0 = math.asin(min(0.85, 44.0 / w))
    yc = (cc[1] - 12.0) + d * math.cos(phi0)
    phis = np.linspace(phi0, phi_end, 14)
    t = (phis - phi0) / (phi_end - phi0)
    pts = np.stack(
        [side * w * np.sin(phis), yc - d * np.cos(phis), z + 3.0 - drop * t**1.2], axis=1
    )
    return np.vstack([head, tubercle, pts])


def _sternum_half_width(z: float) -> float:
    return float(np.interp(z, STERNUM_KEYS[:, 0], STERNUM_KEYS[:, 2]))


def _add_ribs(body: Body) -> None:
    cartilages: list[Shape] = []
    for side, name in ((1.0, "left"), (-1.0, "right")):
        ends = {}
        for k in range(1, 13):
            path = rib_path(k, side)
            r = RIBS[k][4]
            radii = np.full(len(path), r)
            radii[0] = r * 0.8
            radii[-1] = r * 0.85
            body.add(f"rib_{name}_{k}", Tube(path, radii), ORDER_BONE)
            ends[k] = path[-1]
        for k in range(1, 8):
            e = ends[k]
            zs = _STERNAL_Z[k]
            yst = float(np.interp(zs, STERNUM_KEYS[:, 0], STERNUM_KEYS[:, 1]))
            att = (side * (_sternum_half_width(zs) - 2.0), yst - 1.0, zs)
            mid = (0.5 * (e[0] + att[0]), 0.5 * (e[1] + att[1]) + 6.0, 0.5 * (e[2] + att[2]))
            cartilages.append(Tube([e, mid, att], [4.0, 4.5, 4.0]))
        for k in (8, 9, 10):
            e = ends[k]
            target = (
                ends[k - 1] * 0.55
                + np.array([side * _sternum_half_width(_STERNAL_Z[7]), 90.0, _STERNAL_Z[7]]) * 0.45
            )
            mid = 0.5 * (e + target) + np.array([0.0, 6.0, 0.0])
            cartilages.append(Tube([e, mid, target], [3.8, 4.0, 3.8]))
    body.add("costal_cartilages", Union(*cartilages), ORDER_BONE - 0.5)


def _add_sternum_and_clavicles(body: Body) -> None:
    k = STERNUM_KEYS
    body.add("sternum", Loft(k[:, 0], np.zeros(len(k)), k[:, 1], k[:, 2], k[:, 3], 3.0), ORDER_BONE)
    for side, name in ((1.0, "left"), (-1.0, "right")):
        pts = [
            (side * 20, 72, 1410),
            (side * 55, 74, 1418),
            (side * 95, 58, 1426),
            (side * 130, 25, 1432),
            (side * 155, -2, 1436),
            (side * 168, -18, 1436),
        ]
        body.add(f"clavicula_{name}", Tube(pts, [7.5, 7.0, 6.5, 6.5, 7.0, 7.5]), ORDER_BONE)


def _plate(a: np.ndarray, b: np.ndarray, c: np.ndarray, thickness: float) -> Shape:
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n)
    parts: list[Shape] = [
        HalfSpace(n, float(n @ a) + thickness / 2),
        HalfSpace(-n, float(-n @ a) + thickness / 2),
    ]
    for p, q, r in ((a, b, c), (b, c, a), (c, a, b)):
        m = np.cross(q - p, n)
        m /= np.linalg.norm(m)
        if m @ (r - p) > 0:
            m = -m
        parts.append(HalfSpace(m, float(m @ p)))
    centroid = (a + b + c) / 3
    reach = max(np.linalg.norm(v - centroid) for v in (a, b, c)) + thickness
    parts.append(Ellipsoid(centroid, (reach, reach, reach)))
    return Intersect(*parts)


def _scapula(side: float) -> Shape:
    s = side
    a = np.array([s * 78, -102, 1448.0])
    b = np.array([s * 98, -108, 1292.0])
    c = np.array([s * 150, -62, 1405.0])
    return Union(
        _plate(a, b, c, 8.0),
        Tube([(s * 80, -110, 1412), (s * 130, -98, 1432), (s * 168, -55, 1446)], [4.5, 6, 6]),
        Tube([(s * 168, -55, 1446), (s * 178, -25, 1448)], [6.0, 5.5]),
        Tube([(s * 104, -108, 1290), (s * 150, -64, 1400)], [6.0, 5.5]),
        Ellipsoid((s * 160, -42, 1420), (7.0, 13.0, 17.0)),
        Tube([(s * 150, -40, 1428), (s * 150, 0, 1430), (s * 140, 15, 1425)], [6.0, 5.0, 4.5]),
    )


def arm_transform(side: float, arms_up: bool) -> np.ndarray | None:
    """Rotation of an arm about the shoulder joint (None = hanging down)."""
    if not arms_up:
        return None
    return rotation_matrix((0.0, 1.0, 0.0), math.radians(-160.0 * side))


def arm_points(side: float, arms_up: bool, pts: list[tuple[float, float, float]]) -> np.ndarray:
    p = np.array(pts, dtype=np.float64) * np.array([side, 1.0, 1.0])
    rot = arm_transform(side, arms_up)
    if rot is None:
        return p
    c = np.array(SHOULDER) * np.array([side, 1.0, 1.0])
    return (p - c) @ rot.T + c


def _add_arm_bones(body: Body, side: float, name: str) -> None:
    up = body.params.arms_up
    head = arm_points(side, up, [SHOULDER])[0]
    shaft = arm_points(side, up, [(190, -26, 1398), (204, -28, 1260), (212, -30, 1128)])
    condyle = arm_points(side, up, [(212, -30, 1112)])[0]
    humerus = Union(
        Ellipsoid(head, (24.0, 24.0, 24.0)),
        Tube(shaft, [13.0, 10.0, 11.0]),
        Ellipsoid(condyle, (24.0, 13.0, 11.0)),
    )
    body.add(f"humerus_{name}", humerus, ORDER_BONE)
    fore = arm_points(side, up, [(206, -30, 1095), (216, -18, 880)])
    fore2 = arm_points(side, up, [(222, -38, 1095), (228, -26, 880)])
    hand = arm_points(side, up, [(226, -22, 840)])[0]
    body.add("bone_other", Tube(fore, [8.0, 7.0]), ORDER_BONE)
    body.add("bone_other", Tube(fore2, [7.0, 6.0]), ORDER_BONE)
    body.add("bone_other", Ellipsoid(hand, (10.0, 22.0, 28.0)), ORDER_BONE)


def _hip(side: float) -> Shape:
    s = side
    head_c = (s * 88.0, -2.0, 902.0)
    bowl = Ellipsoid((s * 40, -5, 1022), (100.0, 78.0, 125.0))
    wing = Intersect(
        Subtract(bowl, Ellipsoid((s * 40, -5, 1022), (92.0, 70.0, 117.0))),
        HalfSpace((-s, 0, 0), -46.0),
        HalfSpace((0, 1, 0), 46.0),
        HalfSpace((0, 0, -1), -905.0),
        HalfSpace((0, 0, 1), 1024.0),
    )
    si_block = Ellipsoid((s * 56, -62, 930), (14.0, 16.0, 34.0))
    cup = Subtract(
        Ellipsoid((s * 80, -6, 910), (30.0, 34.0, 36.0)),
        Ellipsoid(head_c, (27.0, 27.0, 27.0)),
    )
    pubis = Tube([(s * 70, 14, 895), (s * 35, 40, 886), (s * 6, 48, 878)], [11.0, 9.0, 9.0])
    inferior = Tube([(s * 6, 44, 860), (s * 32, 20, 842), (s * 55, -20, 834)], [8.0, 7.0, 9.0])
    ischium = Tube([(s * 55, -25, 834), (s * 70, -30, 862), (s * 78, -24, 892)], [14.0, 12, 12])
    tuber = Ellipsoid((s * 56, -30, 832), (14.0, 16.0, 14.0))
    return Union(wing, si_block, cup, pubis, inferior, ischium, tuber)


def _add_leg_bones(body: Body, side: float, name: str) -> None:
    s = side
    head_c = (s * 88.0, -2.0, 902.0)
    femur = Union(
        Ellipsoid(head_c, (24.0, 24.0, 24.0)),
        Tube([head_c, (s * 122, -6, 878)], [16.0, 15.0]),
        Ellipsoid((s * 138, -12, 884), (18.0, 20.0, 26.0)),
        Ellipsoid((s * 108, -14, 846), (9.0, 9.0, 9.0)),
        Tube(
            [(s * 132, -8, 870), (s * 118, 0, 760), (s * 96, 6, 580), (s * 84, 4, 520)],
            [15.0, 13.5, 14.0, 22.0],
        ),
        Ellipsoid((s * 60 + s * 22, 2, 512), (40.0, 30.0, 26.0)),
    )
    body.add(f"femur_{name}", femur, ORDER_BONE)
    body.add(f"hip_{name}", _hip(side), ORDER_BONE)
    tibia = Tube([(s * 84, -2, 478), (s * 86, -8, 380), (s * 86, -10, 250)], [34.0, 16.0, 13.0])
    body.add("bone_other", tibia, ORDER_BONE)
    body.add("bone_other", Ellipsoid((s * 84, 40, 520), (20.0, 9.0, 22.0)), ORDER_BONE)


def add_bones(body: Body) -> None:
    """Every bone outside the spine and the skull."""
    _add_ribs(body)
    _add_sternum_and_clavicles(body)
    for side, name in ((1.0, "left"), (-1.0, "right")):
        body.add(f"scapula_{name}", _scapula(side), ORDER_BONE)
        _add_arm_bones(body, side, name)
        _add_leg_bones(body, side, name)
