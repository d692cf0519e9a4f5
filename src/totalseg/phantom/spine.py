"""The spine: vertebrae C1-L5 (body, arch, processes), S1 and sacrum, discs, canal, spinal cord."""

from __future__ import annotations

import itertools

import numpy as np

from totalseg.phantom.body import Body, spine_levels
from totalseg.phantom.primitives import Ellipsoid, RoundedCylinder, Tube
from totalseg.phantom.shapes import Shape, Subtract, Union

__all__ = ["ORDER_BONE", "add_spine", "canal_center"]

ORDER_BONE = 60.0
ORDER_DISC = 59.0
ORDER_CANAL = 61.0
ORDER_CORD = 62.0


def _canal_radii(level: str) -> tuple[float, float]:
    region = level[0]
    return {"C": (11.0, 7.5), "T": (8.0, 7.5), "L": (10.5, 8.5)}.get(region, (9.0, 6.0))


def canal_center(level: str) -> tuple[float, float, float]:
    """(x, y, z) of the spinal canal at a vertebral level."""
    z, y, _hh, _rx, ry = spine_levels()[level]
    if level == "C1":
        return (0.0, y - 8.0, z)
    _cx, cy = _canal_radii(level)
    return (0.0, y - ry - cy - 1.5, z)


def _canal_tube() -> Tube:
    levels = spine_levels()
    pts, radii = [], []
    top = canal_center("C1")
    pts.append((0.0, top[1] - 4.0, top[2] + 25.0))
    radii.append(13.0)
    for name in levels:
        c = canal_center(name)
        pts.append(c)
        radii.append(12.5 if name == "C1" else min(_canal_radii(name)) + 0.5)
    pts += [(0.0, -75.0, 935.0), (0.0, -88.0, 905.0), (0.0, -95.0, 880.0)]
    radii += [7.0, 5.0, 3.0]
    return Tube(np.array(pts), np.array(radii))


def _processes(level: str, cc: tuple[float, float, float], hh: float) -> list[Shape]:
    region = level[0]
    _x, cy, z = cc
    crx, cry = _canal_radii(level)
    back = cy - cry - 2.0
    if region == "C":
        sp_len, sp_drop, sp_r, tp_len, tp_back, tp_r = 16.0, 6.0, 3.5, 14.0, -6.0, 3.5
    elif region == "T":
        sp_len, sp_drop, sp_r, tp_len, tp_back, tp_r = 30.0, 24.0, 4.0, 26.0, 10.0, 4.5
    else:
        sp_len, sp_drop, sp_r, tp_len, tp_back, tp_r = 30.0, 4.0, 5.0, 32.0, 0.0, 4.5
    parts: list[Shape] = [
        Tube([(0, back + 2, z), (0, back - sp_len, z - sp_drop)], [sp_r + 1.5, sp_r]),
    ]
    if region == "L":
        parts.append(Tube([(0, back, z + 7), (0, back - sp_len, z + 5)], [4.5, 4.0]))
        parts.append(Tube([(0, back, z - 7), (0, back - sp_len, z - 9)], [4.5, 4.0]))
    for s in (-1.0, 1.0):
        x0 = s * (crx + 1.0)
        parts.append(
            Tube([(x0, cy + 1, z), (s * (crx + tp_len), cy - tp_back, z + 1)], [tp_r + 1.0, tp_r])
        )
        parts.append(Ellipsoid((s * (crx + 2.5), cy - 3.0, z + hh * 0.85), (4.5, 5.0, 6.0)))
        parts.append(Ellipsoid((s * (crx + 2.5), cy - 5.0, z - hh * 0.85), (4.5, 5.0, 6.0)))
    return parts


def _vertebra(level: str, canal: Shape) -> Shape:
    z, y, hh, rx, ry = spine_levels()[level]
    cc = canal_center(level)
    crx, cry = _canal_radii(level)
    if level == "C1":
        ring = Subtract(
            RoundedCylinder((0, y - 6, z), 24.0, 22.0, 5.5, 2.0),
            RoundedCylinder((0, y - 6, z), 14.0, 15.0, 9.0, 1.0),
        )
        masses = [Ellipsoid((s * 20.0, y, z), (8.0, 10.0, 8.0)) for s in (-1, 1)]
        tps = [Tube([(s * 22, y, z), (s * 38, y - 2, z)], [5.0, 4.0]) for s in (-1, 1)]
        return Subtract(Union(ring, *masses, *tps), canal)
    body = RoundedCylinder((0, y, z), rx, ry, hh, 2.5)
    arch = RoundedCylinder(cc, crx + 5.0, cry + 5.0, hh * 0.8, 2.0)
    parts: list[Shape] = [body, arch, *_processes(level, cc, hh)]
    if level == "C2":
        parts.append(Tube([(0, y + 2, z + hh), (0, y + 4, z + hh + 18)], [5.5, 4.5]))
    return Subtract(Union(*parts), canal)


def _sacrum_segments() -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
    return [
        ((0.0, -55.0, 936.0), (26.0, 16.0, 12.0)),  # S1 body
        ((0.0, -70.0, 912.0), (40.0, 14.0, 12.0)),  # S2
        ((0.0, -80.0, 890.0), (32.0, 12.0, 11.0)),  # S3
        ((0.0, -86.0, 870.0), (22.0, 10.0, 10.0)),  # S4
        ((0.0, -89.0, 852.0), (15.0, 9.0, 9.0)),  # S5
        ((0.0, -87.0, 834.0), (8.0, 8.0, 11.0)),  # coccyx
    ]


def _add_sacrum(body: Body, canal: Shape) -> None:
    segs = _sacrum_segments()
    (c1, r1) = segs[0]
    s1_parts: list[Shape] = [RoundedCylinder(c1, r1[0], r1[1], r1[2], 3.0)]
    for s in (-1.0, 1.0):
        s1_parts.append(Ellipsoid((s * 36.0, -64.0, 932.0), (22.0, 17.0, 16.0)))
    s1 = Subtract(Union(*s1_parts), canal)
    rest: list[Shape] = [Ellipsoid(c, r) for c, r in segs[1:]]
    for s in (-1.0, 1.0):
        rest.append(Ellipsoid((s * 38.0, -74.0, 910.0), (20.0, 14.0, 16.0)))
        rest.append(Ellipsoid((s * 30.0, -80.0, 891.0), (14.0, 12.0, 11.0)))
    sacrum = Subtract(Union(*rest), canal, s1)
    body.add("vertebrae_S1", s1, ORDER_BONE)
    body.add("sacrum", sacrum, ORDER_BONE)


def _add_discs(body: Body) -> None:
    levels = spine_levels()
    names = list(levels)
    for upper, lower in itertools.pairwise(names):
        zu, yu, hu, rxu, ryu = levels[upper]
        zl, yl, hl, rxl, ryl = levels[lower]
        top, bottom = zu - hu, zl + hl
        if top - bottom < 1.0:
            continue
        center = (0.0, 0.5 * (yu + yl), 0.5 * (top + bottom))
        shape = RoundedCylinder(
            center, 0.5 * (rxu + rxl) - 1, 0.5 * (ryu + ryl) - 1, 0.5 * (top - bottom) + 1.0, 1.5
        )
        body.add("disc", shape, ORDER_DISC)
    z5, _y5, h5, rx5, ry5 = levels["L5"]
    body.add("disc", RoundedCylinder((0, -45, z5 - h5 - 5), rx5, ry5, 6.0, 2.0), ORDER_DISC)


def add_spine(body: Body) -> None:
    """Vertebrae, sacrum, discs, canal (CSF) and spinal cord."""
    canal = _canal_tube()
    for level in spine_levels():
        body.add(f"vertebrae_{level}", _vertebra(level, canal), ORDER_BONE)
    _add_sacrum(body, canal)
    _add_discs(body)
    body.add("csf", canal, ORDER_CANAL)
    levels = spine_levels()
    pts = [(0.0, canal_center("C1")[1] - 2.0, 1592.0)]
    radii = [6.5]
    for name in levels:
        if levels[name][0] < 1110:
            break
        c = canal_center(name)
        pts.append(c)
        radii.append(6.0 if name in ("C4", "C5", "C6") else 4.5 if name[0] == "T" else 5.0)
    pts.append((0.0, canal_center("L1")[1], 1108.0))
    radii.append(2.5)
    cord = Tube(np.array(pts), np.array(radii) * min(1.0, body.lin("spinal_cord")))
    body.add("spinal_cord", cord, ORDER_CORD)
