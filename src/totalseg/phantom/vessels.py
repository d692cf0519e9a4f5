"""Arteries and veins: the named classes plus unnamed vessels that make the CT look right."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from totalseg.phantom.body import Body
from totalseg.phantom.primitives import Tube
from totalseg.phantom.shapes import Shape, Union

__all__ = ["add_vessels", "hepatic_veins"]

ORDER_AORTA, ORDER_VESSEL, ORDER_PULMONARY_VEIN, ORDER_MINOR = 26.0, 42.0, 34.5, 33.0

# each entry: name -> list of (x, y, z, radius)
_Path = list[tuple[float, ...]]

_AORTA: _Path = [
    (2, 12, 1296, 14), (-6, 22, 1320, 15), (-10, 26, 1350, 15), (-4, 18, 1375, 14),
    (8, 2, 1388, 13), (20, -20, 1385, 12.5), (25, -38, 1368, 12), (26, -48, 1340, 12),
    (26, -52, 1290, 11.5), (22, -47, 1240, 11.5), (17, -36, 1190, 11), (11, -24, 1150, 10.5),
    (8, -12, 1110, 10), (8, -1, 1060, 9.5), (8, 3, 1020, 9), (8, 3, 1003, 9),
]  # fmt: skip
_NAMED: dict[str, _Path] = {
    "brachiocephalic_trunk": [(-2, 12, 1384, 6.5), (-14, 14, 1410, 6.5), (-22, 14, 1428, 6)],
    "subclavian_artery_right": [
        (-22, 14, 1428, 5),
        (-45, 8, 1440, 5),
        (-80, 0, 1448, 5),
        (-120, -10, 1440, 4.5),
        (-150, -18, 1425, 4.5),
    ],
    "common_carotid_artery_right": [
        (-22, 14, 1428, 4.2),
        (-26, 14, 1480, 4.2),
        (-30, 12, 1540, 4.2),
    ],
    "common_carotid_artery_left": [
        (4, 10, 1389, 4.2),
        (14, 12, 1430, 4.2),
        (24, 12, 1480, 4.2),
        (28, 10, 1540, 4.2),
    ],
    "subclavian_artery_left": [
        (14, -6, 1388, 5),
        (24, -6, 1425, 5),
        (50, -4, 1445, 5),
        (90, -2, 1450, 5),
        (125, -10, 1440, 4.5),
        (150, -18, 1425, 4.5),
    ],
    "superior_vena_cava": [
        (-30, 22, 1425, 9.5),
        (-32, 22, 1380, 9.5),
        (-32, 18, 1335, 9.5),
        (-30, 14, 1300, 9.5),
    ],
    "brachiocephalic_vein_right": [(-55, 10, 1455, 7), (-42, 15, 1440, 7), (-30, 22, 1425, 7)],
    "brachiocephalic_vein_left": [
        (60, 5, 1455, 6.5),
        (40, 20, 1441, 6.5),
        (10, 30, 1431, 6.5),
        (-24, 24, 1426, 6.5),
    ],
    "inferior_vena_cava": [
        (-24, 5, 1262, 11),
        (-24, -2, 1230, 11),
        (-22, -12, 1180, 11),
        (-20, -10, 1140, 11),
        (-20, -6, 1100, 10.5),
        (-18, -2, 1050, 10.5),
        (-14, -2, 1000, 10),
        (-8, -4, 985, 10),
    ],
    "iliac_artery_left": [
        (8, 3, 1003, 6.5),
        (30, 0, 980, 6.5),
        (48, 4, 955, 6),
        (64, 14, 925, 6),
        (74, 32, 895, 5.5),
        (80, 42, 878, 5.5),
    ],
    "iliac_artery_right": [
        (8, 3, 1003, 6.5),
        (-16, -2, 980, 6.5),
        (-40, 2, 955, 6),
        (-60, 14, 925, 6),
        (-72, 32, 895, 5.5),
        (-78, 42, 878, 5.5),
    ],
    "iliac_vena_left": [
        (-8, -4, 985, 8),
        (18, -12, 972, 8),
        (40, -10, 950, 7.5),
        (58, 2, 920, 7.5),
        (70, 24, 892, 7),
        (76, 36, 876, 7),
    ],
    "iliac_vena_right": [
        (-8, -4, 985, 8),
        (-30, -12, 970, 8),
        (-50, -9, 948, 7.5),
        (-62, 4, 920, 7.5),
        (-70, 24, 892, 7),
        (-75, 36, 876, 7),
    ],
}
_PULMONARY_ARTERY: list[_Path] = [
    [(8, 42, 1296, 13), (12, 38, 1322, 13), (12, 22, 1345, 12)],
    [(12, 22, 1345, 10), (-12, 2, 1346, 10), (-40, -4, 1338, 9), (-58, -6, 1328, 7.5)],
    [(12, 22, 1345, 10), (34, 5, 1350, 10), (52, -8, 1343, 8.5), (62, -14, 1334, 7)],
]
_PULMONARY_VEINS: list[_Path] = [
    [(-5, -2, 1305, 6), (-35, 0, 1312, 6), (-55, -2, 1316, 5.5)],
    [(-5, -10, 1290, 6), (-35, -14, 1285, 6), (-52, -18, 1280, 5.5)],
    [(25, -2, 1305, 6), (45, 0, 1312, 6), (58, -2, 1318, 5.5)],
    [(25, -10, 1290, 6), (45, -16, 1285, 6), (56, -20, 1280, 5.5)],
]
_PORTAL: list[_Path] = [
    [(-8, 14, 1092, 7.5), (-22, 14, 1120, 7.5), (-40, 18, 1145, 7.5), (-55, 15, 1160, 7)],
    [(-55, 15, 1160, 5.5), (-85, 10, 1170, 5)],
    [(-55, 15, 1160, 5), (-25, 38, 1182, 4.5)],
    [
        (-8, 14, 1092, 5.5),
        (20, 2, 1102, 5.5),
        (50, -15, 1115, 5.5),
        (80, -30, 1128, 5),
        (94, -38, 1135, 5),
    ],
]
#: unnamed arteries: carotid continuation, axillary, celiac, SMA, renal, femoral
_ARTERIES: list[_Path] = [
    [(-30, 12, 1540, 3.5), (-34, 10, 1600, 3)],
    [(28, 10, 1540, 3.5), (32, 8, 1600, 3)],
    [
        (8, -18, 1135, 3.5),
        (8, 14, 1140, 3.5),
        (40, 0, 1135, 3),
        (70, -20, 1140, 3),
        (92, -36, 1145, 2.5),
    ],
    [(8, 14, 1140, 3), (-25, 20, 1142, 3), (-50, 22, 1155, 2.5)],
    [(8, -8, 1100, 4), (6, 16, 1080, 4), (2, 30, 1000, 3.5), (-5, 35, 950, 3)],
    [(8, -10, 1095, 3), (60, -35, 1085, 3)],
    [(8, -10, 1092, 3), (-58, -36, 1072, 3)],
    [(80, 42, 878, 4.5), (84, 35, 800, 4.5), (86, 10, 650, 4), (84, -10, 520, 4)],
    [(-78, 42, 878, 4.5), (-84, 35, 800, 4.5), (-86, 10, 650, 4), (-84, -10, 520, 4)],
    [(46, 3, 958, 4), (52, -30, 930, 3.5)],
    [(-42, 0, 958, 4), (-50, -30, 930, 3.5)],
]
#: unnamed veins: jugular, subclavian, SMV, renal, femoral
_VEINS: list[_Path] = [
    [(45, 6, 1455, 6.5), (42, 8, 1520, 6.5), (40, 4, 1590, 5.5)],
    [(-45, 6, 1455, 6.5), (-42, 8, 1520, 6.5), (-40, 4, 1590, 5.5)],
    [(60, 5, 1455, 6), (100, 8, 1440, 6), (150, 0, 1420, 6)],
    [(-55, 10, 1455, 6), (-100, 8, 1440, 6), (-150, 0, 1420, 6)],
    [(-8, 14, 1092, 5.5), (-10, 25, 1040, 5), (-12, 30, 990, 4.5)],
    [(-16, -4, 1085, 5), (8, 6, 1088, 4.5), (40, -16, 1085, 5), (60, -34, 1080, 5)],
    [(-18, -6, 1070, 5.5), (-52, -30, 1064, 5)],
    [(76, 36, 876, 5.5), (78, 30, 800, 5.5), (82, 6, 650, 5), (82, -14, 520, 5)],
    [(-75, 36, 876, 5.5), (-78, 30, 800, 5.5), (-82, 6, 650, 5), (-82, -14, 520, 5)],
]
_HEPATIC_VEINS: list[_Path] = [
    [(-24, -2, 1228, 6), (-70, 0, 1200, 5), (-112, 6, 1178, 3.5)],
    [(-24, -2, 1228, 5.5), (-48, 30, 1196, 4.5), (-58, 56, 1170, 3.5)],
    [(-24, -2, 1228, 5), (0, 30, 1206, 4), (22, 46, 1196, 3)],
]


def _tube(points: npt.ArrayLike, radius_scale: float = 1.0) -> Tube:
    arr = np.asarray(points, dtype=np.float64)
    return Tube(arr[:, :3], arr[:, 3] * radius_scale)


def _tubes(paths: Sequence[npt.ArrayLike], radius_scale: float = 1.0) -> Shape:
    return Union(*(_tube(p, radius_scale) for p in paths))


def add_vessels(body: Body) -> None:
    """The aorta first (low priority, so that its planted growth changes no neighbour)."""
    body.add("aorta", _tube(_AORTA, body.vol("aorta") ** 0.5), ORDER_AORTA)
    for name, path in _NAMED.items():
        body.add(name, _tube(path, body.vol(name) ** 0.5), ORDER_VESSEL)
    body.add(
        "pulmonary_artery",
        _tubes(_PULMONARY_ARTERY, body.vol("pulmonary_artery") ** 0.5),
        ORDER_VESSEL,
    )
    body.add(
        "pulmonary_vein",
        _tubes(_PULMONARY_VEINS, body.vol("pulmonary_vein") ** 0.5),
        ORDER_PULMONARY_VEIN,
    )
    scale = body.vol("portal_vein_and_splenic_vein") ** 0.5
    body.add("portal_vein_and_splenic_vein", _tubes(_PORTAL, scale), ORDER_VESSEL)
    body.add("artery", _tubes(_ARTERIES), ORDER_MINOR)
    body.add("vein", _tubes(_VEINS), ORDER_MINOR)
    thoracic = [p for p in _AORTA if 1215 < p[2] < 1392]
    body.add("fat_mediastinal", _tube([(x, y, z, r + 7.0) for x, y, z, r in thoracic]), 11.5)


def hepatic_veins() -> Shape:
    """Hepatic veins (inside the liver label; the caller clips them to the liver)."""
    return _tubes(_HEPATIC_VEINS)
