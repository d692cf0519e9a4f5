"""Body outline (skin, subcutaneous fat, muscle), table, body cavities, lungs and named muscles."""

from __future__ import annotations

import numpy as np

from totalseg.phantom.body import Body, spine_levels
from totalseg.phantom.bones import RIBS, arm_points, rib_path
from totalseg.phantom.primitives import Dome, Ellipsoid, HalfSpace, Loft, RoundedCylinder, Tube
from totalseg.phantom.shapes import Displace, Intersect, Offset, Shape, Subtract, Union

__all__ = ["add_soft_tissue", "diaphragm_dome", "thoracic_cage"]

ORDER_TABLE, ORDER_SKIN, ORDER_FAT, ORDER_LEAN = 0.0, 1.0, 2.0, 3.0
ORDER_LUNG, ORDER_MEDIASTINUM, ORDER_DIAPHRAGM, ORDER_CAVITY = 10.0, 11.0, 12.0, 13.0
ORDER_MUSCLE, ORDER_PSOAS = 20.0, 22.0

#: lean trunk: z, cy, half width, half depth, weight of visceral-fat growth
_TRUNK = np.array(
    [[770, -5, 150, 85, 0.3], [840, -10, 165, 96, 0.6], [900, -10, 163, 98, 0.8],
     [960, -6, 152, 97, 1.0], [1040, -4, 142, 96, 1.0], [1120, -4, 146, 100, 1.0],
     [1200, -10, 150, 116, 0.6], [1280, -14, 155, 124, 0.3], [1360, -18, 160, 120, 0.2],
     [1420, -22, 166, 104, 0.1], [1442, -22, 160, 90, 0.0], [1462, -22, 110, 66, 0.0],
     [1476, -20, 70, 56, 0.0]],
    dtype=np.float64,
)  # fmt: skip
#: abdominal + pelvic cavity: z, anterior y, posterior y, half width
_CAVITY = np.array(
    [[826, 55, -70, 50], [880, 74, -76, 100], [960, 78, -80, 132], [1040, 79, -80, 126],
     [1120, 83, -86, 130], [1200, 90, -96, 134], [1262, 92, -100, 136]],
    dtype=np.float64,
)  # fmt: skip


def diaphragm_dome(offset_mm: float = 0.0) -> Dome:
    """The region below the diaphragm's upper surface (shifted down by offset_mm)."""
    o = float(offset_mm)
    return Dome(
        [(-62.0, 5.0, 1246.0 - o), (62.0, 0.0, 1230.0 - o)],
        kx=0.0042,
        ky_front=0.004,
        ky_back=0.011,
        lo=(-200.0, -160.0, 900.0),
        hi=(200.0, 160.0, 1250.0 - o),
    )


def thoracic_cage(inset_mm: float = 7.0) -> Loft:
    """The inside of the rib cage as a stack of ellipses centred on the midline."""
    zs, cys, axs, ays = [1492.0, 1470.0], [-12.0, -12.0], [46.0, 62.0], [24.0, 40.0]
    for k in range(1, 13):
        w, d, drop, _phi, _r = RIBS[k]
        path = rib_path(k, 1.0)
        ys = path[2:, 1]
        zs.append(float(path[2, 2]) - 0.35 * drop)
        cys.append(float(0.5 * (ys.min() + (ys.min() + 2 * d))))
        axs.append(w - inset_mm)
        ays.append(d - inset_mm)
    zs.append(1120.0)
    cys.append(cys[-1])
    axs.append(axs[-1] - 5)
    ays.append(ays[-1] - 5)
    order = np.argsort(zs)
    arr = np.array([zs, cys, axs, ays])[:, order]
    return Loft(arr[0], np.zeros(arr.shape[1]), arr[1], arr[2], arr[3], 2.0)


def _trunk(visceral_mm: float) -> Loft:
    t = _TRUNK
    grow = visceral_mm * t[:, 4]
    return Loft(
        t[:, 0], np.zeros(len(t)), t[:, 1] + 0.4 * grow, t[:, 2] + grow, t[:, 3] + 0.9 * grow, 3.0
    )


def _legs() -> list[Shape]:
    keys = np.array(
        [
            [430, 84, 0, 48, 50],
            [600, 90, 0, 58, 62],
            [720, 92, 0, 68, 70],
            [800, 95, -2, 76, 80],
            [860, 100, -5, 80, 82],
        ],
        dtype=np.float64,
    )
    return [Loft(keys[:, 0], s * keys[:, 1], keys[:, 2], keys[:, 3], keys[:, 4]) for s in (-1, 1)]


def _arms(arms_up: bool) -> list[Shape]:
    out: list[Shape] = []
    for s in (-1.0, 1.0):
        upper = arm_points(s, arms_up, [(190, -25, 1400), (212, -28, 1110), (222, -22, 880)])
        hand = arm_points(s, arms_up, [(226, -22, 830)])[0]
        out.append(Tube(upper, [40.0, 32.0, 24.0]))
        out.append(Ellipsoid(hand, (16.0, 36.0, 50.0)))
        out.append(Ellipsoid((s * 175, -20, 1422), (50.0, 60.0, 55.0)))
    return out


def _head() -> list[Shape]:
    return [
        Ellipsoid((0, 2, 1655), (76.0, 98.0, 100.0)),
        Ellipsoid((0, 35, 1572), (52.0, 56.0, 40.0)),
        Ellipsoid((0, 100, 1626), (11.0, 16.0, 24.0)),
        Loft([1440, 1500, 1590], [0, 0, 0], [-14, -12, -8], [60, 54, 56], [56, 56, 62]),
    ]


def _add_outline(body: Body) -> None:
    fat, fat_legs = body.fat_mm, body.fat_legs_mm
    trunk = _trunk(body.visceral_mm)
    legs, arms, head = _legs(), _arms(body.params.arms_up), _head()
    lean = Union(trunk, *legs, *arms, *head)
    outer = Union(
        Offset(trunk, fat),
        *(Offset(g, fat_legs) for g in legs),
        *(Offset(a, 0.6 * fat) for a in arms),
        *(Offset(h, 4.0 + 0.15 * fat) for h in head),
    ).remembered()
    grow = body.visceral_mm * _TRUNK[:, 4]
    lean_back = float((_TRUNK[:, 1] - _TRUNK[:, 3] - 0.5 * grow).min())
    table_top = lean_back - 0.5 * fat  # the patient's back flattens on the table
    body.add("skin", Intersect(outer, HalfSpace((0, -1, 0), -table_top)), ORDER_SKIN)
    body.add(
        "fat_subcutaneous",
        Intersect(Offset(outer, -1.8), HalfSpace((0, -1, 0), -table_top - 1.8)),
        ORDER_FAT,
    )
    body.add("muscle", Intersect(lean, HalfSpace((0, -1, 0), -table_top - 3.0)), ORDER_LEAN)
    if body.params.table:
        center = (0.0, table_top - 19.0, 800.0)
        body.add("table", RoundedCylinder(center, 240.0, 18.0, 1200.0, 6.0), ORDER_TABLE)
        core = RoundedCylinder(center, 232.0, 12.0, 1190.0, 4.0)
        body.add("table_core", core, ORDER_TABLE + 0.1)


def _add_cavities(body: Body) -> None:
    rng = body.rng("lungs")
    cage = thoracic_cage()
    dome = diaphragm_dome()
    lungs = {}
    for side in ("left", "right"):
        s = 1.0 if side == "left" else -1.0
        lung = Intersect(cage, HalfSpace((-s, 0, 0), -9.0))
        lungs[side] = Displace(lung, rng, 2.0, 50.0).remembered()
    lf = 1.0 / np.sqrt(2.0)
    oblique_l = Displace(HalfSpace((0.0, -lf, -lf), -lf * (1388.0 - 90.0)), rng, 4.0, 70.0)
    oblique_r = Displace(HalfSpace((0.0, -lf, -lf), -lf * (1376.0 - 90.0)), rng, 4.0, 70.0)
    horizontal = Displace(HalfSpace((0.0, -0.15, -1.0), -1306.0), rng, 3.0, 70.0)
    # the half-spaces hold the part above each fissure
    body.add("lung_upper_lobe_left", Intersect(lungs["left"], oblique_l), ORDER_LUNG)
    body.add("lung_lower_lobe_left", Subtract(lungs["left"], oblique_l), ORDER_LUNG)
    body.add("lung_lower_lobe_right", Subtract(lungs["right"], oblique_r), ORDER_LUNG)
    upper_r = Intersect(lungs["right"], oblique_r).remembered()
    body.add("lung_upper_lobe_right", Intersect(upper_r, horizontal), ORDER_LUNG)
    body.add("lung_middle_lobe_right", Subtract(upper_r, horizontal), ORDER_LUNG)
    levels = spine_levels()
    med_keys = []
    for z, ax, cx in (
        (1482, 20, 0),
        (1440, 24, 0),
        (1400, 28, 2),
        (1350, 32, 4),
        (1300, 36, 6),
        (1250, 40, 8),
        (1215, 40, 8),
    ):
        front = float(np.interp(z, [1230, 1300, 1370, 1410, 1480], [92, 90, 84, 76, 40])) - 4
        spine_front = float(
            np.interp(
                z,
                [v[0] for v in levels.values()][::-1],
                [v[1] + v[4] for v in levels.values()][::-1],
            )
        )
        med_keys.append((z, cx, 0.5 * (front + spine_front), ax, 0.5 * (front - spine_front)))
    m = np.array(med_keys[::-1])
    body.add(
        "fat_mediastinal", Loft(m[:, 0], m[:, 1], m[:, 2], m[:, 3], m[:, 4], 3.0), ORDER_MEDIASTINUM
    )
    diaphragm = Intersect(Offset(dome, 5.0), Offset(cage, 9.0))
    body.add("muscle", diaphragm, ORDER_DIAPHRAGM)
    c = _CAVITY
    grow = body.visceral_mm
    cavity = Loft(
        c[:, 0],
        np.zeros(len(c)),
        0.5 * (c[:, 1] + c[:, 2]) + 0.4 * grow,
        c[:, 3] + 4.0 + grow,
        0.5 * (c[:, 1] - c[:, 2]) + 0.9 * grow,
        3.0,
    )
    body.add("fat_visceral", Intersect(cavity, dome), ORDER_CAVITY)


def _add_muscles(body: Body) -> None:
    auto = np.array(
        [
            [880, 22, -92, 16, 12],
            [940, 30, -84, 30, 22],
            [1040, 36, -76, 36, 29],
            [1120, 36, -88, 32, 26],
            [1200, 33, -104, 26, 20],
            [1300, 31, -114, 22, 17],
            [1400, 26, -98, 18, 14],
            [1450, 21, -72, 15, 14],
            [1545, 17, -46, 11, 11],
        ]
    )
    psoas = np.array(
        [
            [1135, 26, -32, 7, 7],
            [1085, 34, -26, 13, 12],
            [1035, 44, -20, 19, 17],
            [990, 54, -14, 23, 19],
            [950, 66, -4, 24, 18],
            [910, 76, 12, 22, 17],
            [880, 84, 30, 19, 14],
            [850, 96, 22, 14, 12],
            [826, 104, 6, 9, 9],
        ],
        dtype=np.float64,
    )
    psoas[:, 3:] *= 1.15
    gmax = np.array(
        [
            [790, 112, -45, 36, 22],
            [830, 104, -66, 52, 32],
            [870, 95, -80, 60, 34],
            [920, 78, -94, 52, 26],
            [962, 60, -100, 32, 16],
        ]
    )
    gmed = np.array(
        [
            [872, 138, -30, 16, 26],
            [920, 134, -38, 22, 38],
            [970, 118, -40, 26, 40],
            [1010, 100, -40, 16, 26],
        ]
    )
    gmin = np.array([[882, 124, -22, 9, 20], [930, 124, -28, 11, 28], [980, 106, -30, 11, 26]])
    lean = _trunk(body.visceral_mm)
    for side in ("left", "right"):
        s = 1.0 if side == "left" else -1.0
        for name, keys in (
            ("autochthon", auto),
            ("gluteus_maximus", gmax),
            ("gluteus_medius", gmed),
            ("gluteus_minimus", gmin),
        ):
            k = keys[::-1] if keys[0, 0] > keys[-1, 0] else keys
            shape: Shape = Loft(k[:, 0], s * k[:, 1], k[:, 2], k[:, 3], k[:, 4])
            shape = Intersect(body_scaled(body, f"{name}_{side}", shape), Offset(lean, -3.0))
            order = ORDER_MUSCLE + (0.2 if name == "gluteus_minimus" else 0.0)
            body.add(f"{name}_{side}", shape, order)
        k = psoas[::-1]
        pshape = Union(
            Loft(k[:, 0], s * k[:, 1], k[:, 2], k[:, 3], k[:, 4]),
            Ellipsoid((s * 80, 4, 962), (26.0, 20.0, 36.0)),
        )
        body.add(f"iliopsoas_{side}", body_scaled(body, f"iliopsoas_{side}", pshape), ORDER_PSOAS)


def body_scaled(body: Body, name: str, shape: Shape) -> Shape:
    """A muscle grown or shrunk in cross-section by its size factor (length kept)."""
    factor = float(np.sqrt(body.vol(name)))
    return Offset(shape, 14.0 * (factor - 1.0))


def add_soft_tissue(body: Body) -> None:
    _add_outline(body)
    _add_cavities(body)
    _add_muscles(body)
