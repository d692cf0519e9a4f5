"""Abdominal and pelvic organs: liver, spleen, kidneys (+cysts), adrenals, pancreas, bowel, ..."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from totalseg.phantom.body import Body
from totalseg.phantom.primitives import Ellipsoid, HalfSpace, Tube
from totalseg.phantom.shapes import (
    Displace,
    Intersect,
    Offset,
    Scaled,
    Shape,
    SmoothUnion,
    Subtract,
    Union,
    axes_from,
)
from totalseg.phantom.softtissue import diaphragm_dome
from totalseg.phantom.vessels import hepatic_veins

__all__ = ["add_abdomen"]

ORDER_KIDNEY, ORDER_CYST, ORDER_PANCREAS = 23.0, 24.0, 25.0
ORDER_BOWEL, ORDER_COLON, ORDER_ORGAN, ORDER_ORGAN_HIGH = 28.0, 28.5, 30.0, 31.0

_COLON = [
    (-88, 18, 930, 26), (-92, 5, 980, 24), (-90, -5, 1040, 22), (-80, 10, 1092, 21),
    (-55, 45, 1084, 20), (-20, 64, 1068, 20), (20, 64, 1072, 20), (55, 45, 1100, 19),
    (84, 2, 1140, 19), (96, -20, 1100, 18), (96, -20, 1040, 17), (90, -10, 980, 17),
    (75, 15, 945, 16), (45, 35, 925, 16), (15, 25, 912, 16), (0, -15, 902, 17),
    (0, -44, 880, 19), (0, -48, 852, 18), (0, -38, 826, 12), (0, -28, 805, 7),
]  # fmt: skip
_STOMACH = [
    (50, -18, 1208, 32), (64, 4, 1188, 36), (68, 28, 1160, 34), (56, 46, 1130, 30),
    (30, 52, 1114, 24), (6, 46, 1113, 17), (-14, 38, 1118, 12),
]  # fmt: skip
_DUODENUM = [
    (-14, 38, 1118, 12), (-32, 28, 1118, 13), (-50, 10, 1104, 12), (-57, -2, 1080, 12),
    (-56, -2, 1046, 12), (-42, 4, 1028, 11), (-15, 14, 1022, 11), (10, 17, 1024, 11),
    (28, 10, 1040, 11), (32, 6, 1066, 11),
]  # fmt: skip
_PANCREAS = [
    (-38, 10, 1066, 15), (-30, 14, 1088, 14), (-8, 24, 1098, 10), (20, 17, 1104, 11),
    (50, 2, 1112, 10), (75, -20, 1122, 9), (90, -34, 1130, 7),
]  # fmt: skip


def _tube(points: npt.ArrayLike, scale: float = 1.0) -> Tube:
    a = np.asarray(points, dtype=np.float64)
    return Tube(a[:, :3], a[:, 3] * scale)


def _add_liver_and_spleen(body: Body) -> None:
    rng = body.rng("liver")
    below = diaphragm_dome(6.0)
    liver: Shape = SmoothUnion(
        Ellipsoid((-70, -4, 1178), (84.0, 86.0, 76.0)),
        Ellipsoid((6, 52, 1198), (62.0, 30.0, 32.0)),
        k_mm=30.0,
    )
    liver = Intersect(Displace(liver, rng, 4.0, 80.0), below, HalfSpace((0.35, 0.3, -1), -1130))
    f = body.lin("liver")
    liver_s = Scaled(liver, (-50, 10, 1180), f)
    body.add("liver", liver_s, ORDER_ORGAN)
    body.add(
        "liver",
        Intersect(hepatic_veins(), Offset(liver_s, -3.0)),
        ORDER_ORGAN + 0.1,
        tissue="hepatic_vein",
    )
    gb_axes = axes_from((0.15, 0.45, -0.88), (1.0, 0.0, 0.0))
    body.organ(
        "gallbladder",
        Ellipsoid((-50, 50, 1122), (36.0, 15.0, 15.0), gb_axes),
        (-50, 50, 1122),
        ORDER_ORGAN_HIGH,
    )
    sp_axes = axes_from((-0.3, 0.8, -0.5), (1.0, 0.0, 0.0))
    spleen = Intersect(
        Displace(
            Ellipsoid((94, -46, 1182), (60.0, 26.0, 46.0), sp_axes), body.rng("spleen"), 3.0, 60.0
        ),
        below,
    )
    body.organ("spleen", spleen, (94, -46, 1182), ORDER_ORGAN)


def _add_kidneys(body: Body) -> None:
    for side in ("left", "right"):
        s = 1.0 if side == "left" else -1.0
        rng = body.rng(f"kidney_{side}")
        c = np.array([s * 74.0, -46.0, 1094.0 if side == "left" else 1068.0])
        axes = axes_from((-s * 0.25, -0.2, 0.95), (s * 0.7, 0.7, 0.0))
        kidney = Subtract(
            Displace(Ellipsoid(c, (58.0, 31.0, 27.0), axes), rng, 1.5, 40.0),
            Ellipsoid(c + np.array([-s * 24.0, 14.0, 0.0]), (24.0, 14.0, 11.0), axes),
        )
        f = body.lin(f"kidney_{side}")
        body.add(f"kidney_{side}", Scaled(kidney, c, f), ORDER_KIDNEY)
        n_cysts = 1 + int(rng.integers(0, 3))
        cysts = []
        for _ in range(n_cysts):
            local = rng.uniform(-0.45, 0.45, size=3) * np.array([56.0, 28.0, 24.0])
            pos = c + f * (axes @ local)
            radius = float(rng.uniform(6.0, 13.0)) * body.lin(f"kidney_cyst_{side}")
            cysts.append(Ellipsoid(pos, (radius, radius, radius)))
        body.add(f"kidney_cyst_{side}", Union(*cysts), ORDER_CYST)
        top = c + np.array([-s * 30.0, 16.0, 70.0])
        adrenal = Union(
            Tube([top, top + np.array([s * 10.0, -16.0, -22.0])], [5.5, 4.0]),
            Tube([top, top + np.array([-s * 4.0, -18.0, -25.0])], [5.5, 4.0]),
        )
        body.organ(f"adrenal_gland_{side}", adrenal, top, ORDER_ORGAN_HIGH)


def _small_bowel(rng: np.random.Generator) -> Tube:
    """Loops packed in layers; each layer a serpentine over a 4 x 3 grid of the mid-abdomen,
    alternately running left-right and front-back, with random sway (ends at the cecum)."""
    xs, ys = (-62.0, -21.0, 21.0, 62.0), (12.0, 38.0, 62.0)
    pts = [(-70.0, 12.0, 936.0)]
    for layer, z in enumerate((950.0, 982.0, 1014.0, 1046.0)):
        if layer % 2 == 0:
            rows = [[(x, y) for x in (xs if r % 2 == 0 else xs[::-1])] for r, y in enumerate(ys)]
        else:
            rows = [[(x, y) for y in (ys if r % 2 == 0 else ys[::-1])] for r, x in enumerate(xs)]
        for row in rows if layer % 4 < 2 else rows[::-1]:
            pts.extend((x, y, z + float(rng.normal(0.0, 6.0))) for x, y in row)
    arr = np.array(pts[::-1])
    arr[1:-1, :2] += rng.normal(0.0, [9.0, 6.0], size=(len(arr) - 2, 2))
    return Tube(arr, 11.0)


def _add_gut(body: Body) -> None:
    below = diaphragm_dome(6.0)
    stomach = Intersect(_tube(_STOMACH), below)
    body.organ("stomach", stomach, (50, 20, 1160), ORDER_BOWEL)
    body.organ("duodenum", _tube(_DUODENUM), (-30, 10, 1070), ORDER_BOWEL + 0.1)
    body.organ("small_bowel", _small_bowel(body.rng("small_bowel")), (0, 35, 995), ORDER_BOWEL)
    colon = _tube(_COLON, body.lin("colon") ** 1.5)
    body.add("colon", colon, ORDER_COLON)
    pancreas = Displace(_tube(_PANCREAS, 1.12), body.rng("pancreas"), 2.0, 30.0)
    body.organ("pancreas", pancreas, (20, 12, 1100), ORDER_PANCREAS)


def _add_pelvis(body: Body) -> None:
    bladder_c = (0.0, 22.0, 884.0)
    bladder = Ellipsoid(bladder_c, (40.0, 34.0, 30.0))
    body.organ("urinary_bladder", bladder, (0.0, 22.0, 860.0), ORDER_ORGAN)
    if body.params.sex == "M":
        body.organ(
            "prostate", Ellipsoid((0, 4, 842), (23.0, 17.0, 19.0)), (0, 4, 842), ORDER_ORGAN_HIGH
        )
    else:
        body.add("uterus", Ellipsoid((0, -8, 912), (32.0, 20.0, 36.0)), ORDER_ORGAN)


def add_abdomen(body: Body) -> None:
    _add_kidneys(body)
    _add_gut(body)
    _add_liver_and_spleen(body)
    _add_pelvis(body)
