"""Heart (chambers, myocardium, left atrial appendage), trachea, esophagus, thyroid."""

from __future__ import annotations

import numpy as np

from totalseg.phantom.body import Body
from totalseg.phantom.primitives import Ellipsoid, Tube
from totalseg.phantom.shapes import Offset, Scaled, Shape, Union, axes_from

__all__ = ["HEART_CENTER", "add_thorax"]

HEART_CENTER = (14.0, 18.0, 1282.0)
ORDER_PERICARDIUM, ORDER_ATRIA, ORDER_RV, ORDER_MYO, ORDER_LV = 34.0, 35.0, 35.5, 36.0, 36.5


def _heart_parts() -> dict[str, Shape]:
    u = np.array([0.55, 0.45, -0.70])
    u /= np.linalg.norm(u)
    base = np.array([4.0, 14.0, 1304.0])
    lv_c = base + 44.0 * u + np.array([4.0, 2.0, 0.0])
    axes = axes_from(u, (1.0, -1.0, 0.0))
    lv = Ellipsoid(lv_c, (42.0, 20.0, 20.0), axes)
    rv_dir = np.array([-0.75, 0.65, 0.0])
    rv = Ellipsoid(
        lv_c + 24.0 * rv_dir + np.array([0, 0, 4.0]), (40.0, 16.0, 30.0), axes_from(u, rv_dir)
    )
    return {
        "heart_ventricle_left": lv,
        "heart_myocardium": Offset(lv, 10.0),
        "heart_ventricle_right": rv,
        "heart_atrium_left": Ellipsoid((10.0, -6.0, 1300.0), (28.0, 16.0, 18.0)),
        "heart_atrium_right": Ellipsoid((-32.0, 12.0, 1282.0), (22.0, 24.0, 29.0)),
        "atrial_appendage_left": Tube(
            [(28.0, -6.0, 1306.0), (44.0, 10.0, 1312.0), (52.0, 24.0, 1303.0)], [8.0, 7.0, 5.5]
        ),
    }


def _add_heart(body: Body) -> None:
    f = 1.25 * body.lin("heart")
    parts = {k: Scaled(v, HEART_CENTER, f) for k, v in _heart_parts().items()}
    body.add("fat_mediastinal", Offset(Union(*parts.values()), 5.0), ORDER_PERICARDIUM)
    order = {
        "heart_atrium_left": ORDER_ATRIA, "heart_atrium_right": ORDER_ATRIA,
        "heart_ventricle_right": ORDER_RV, "atrial_appendage_left": ORDER_RV + 0.1,
        "heart_myocardium": ORDER_MYO, "heart_ventricle_left": ORDER_LV,
    }  # fmt: skip
    for name, shape in parts.items():
        body.add(name, shape, order[name])


def _add_airway_and_esophagus(body: Body) -> None:
    trachea = Union(
        Tube(
            [(0, 24, 1516), (0, 20, 1460), (0, 8, 1400), (0, -2, 1354), (0, -6, 1342)],
            [9.0, 9.5, 9.5, 9.5, 9.0],
        ),
        Tube([(0, -6, 1342), (-22, -12, 1326), (-36, -14, 1312)], [8.0, 7.0, 6.0]),
        Tube([(0, -6, 1342), (24, -10, 1331), (42, -14, 1319)], [7.5, 6.5, 5.5]),
    )
    body.add("trachea", Scaled(trachea, (0, 0, 1430), body.lin("trachea") ** 0.5), 41.0)
    body.add(
        "air_internal",
        Tube([(0, 40, 1612), (0, 28, 1580), (0, 24, 1545), (0, 24, 1516)], [9.0, 8.0, 8.5, 8.0]),
        40.5,
    )
    esophagus = Tube(
        [
            (0, 7, 1522),
            (2, 4, 1460),
            (5, -8, 1400),
            (6, -22, 1350),
            (6, -32, 1300),
            (10, -32, 1258),
            (20, -18, 1214),
            (32, 0, 1190),
            (44, 12, 1174),
        ],
        [8.0, 8.0, 8.0, 8.5, 8.5, 8.5, 9.0, 10.0, 12.0],
    )
    body.add("esophagus", Scaled(esophagus, (0, -10, 1350), body.lin("esophagus") ** 0.5), 40.0)


def _add_thyroid(body: Body) -> None:
    shape = Union(
        Ellipsoid((17.0, 20.0, 1478.0), (8.0, 10.0, 22.0)),
        Ellipsoid((-17.0, 20.0, 1478.0), (8.0, 10.0, 22.0)),
        Ellipsoid((0.0, 31.0, 1462.0), (13.0, 5.0, 6.0)),
    )
    body.organ("thyroid_gland", shape, (0.0, 24.0, 1472.0), 33.0)


def add_thorax(body: Body) -> None:
    _add_heart(body)
    _add_airway_and_esophagus(body)
    _add_thyroid(body)
