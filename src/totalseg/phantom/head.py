"""Head: brain, skull (cranium, skull base, facial bones, mandible), face, eyes, airways."""

from __future__ import annotations

from totalseg.phantom.body import Body
from totalseg.phantom.primitives import Ellipsoid, HalfSpace, Tube
from totalseg.phantom.shapes import Intersect, Offset, Scaled, Subtract, Union

__all__ = ["add_head"]

ORDER_FACE, ORDER_EYE, ORDER_SKULL, ORDER_BRAIN, ORDER_SINUS = 56.0, 57.0, 60.0, 61.0, 61.5
_HEAD_CENTER = (0.0, 0.0, 1650.0)


def add_head(body: Body) -> None:
    f = body.lin("brain")
    cerebrum = Ellipsoid((0, -6, 1672), (66.0, 84.0, 58.0))
    brain = Union(
        cerebrum,
        Ellipsoid((0, -48, 1614), (48.0, 30.0, 24.0)),
        Tube([(0, -22, 1642), (0, -27, 1598)], [13.0, 10.0]),
    )
    cavity = Offset(brain, 2.5)
    outer = Union(
        Offset(cerebrum, 10.0),
        Ellipsoid((0, -18, 1606), (62.0, 60.0, 11.0)),
        Ellipsoid((0, 52, 1610), (38.0, 30.0, 24.0)),
        Tube([(-62, 30, 1628), (-48, 66, 1636)], [6.0, 5.0]),
        Tube([(62, 30, 1628), (48, 66, 1636)], [6.0, 5.0]),
        Tube(
            [
                (-50, -8, 1606),
                (-48, 10, 1556),
                (-30, 54, 1540),
                (0, 70, 1536),
                (30, 54, 1540),
                (48, 10, 1556),
                (50, -8, 1606),
            ],
            [7.0, 7.5, 7.0, 8.0, 7.0, 7.5, 7.0],
        ),
    )
    orbits = [Ellipsoid((s * 32, 60, 1652), (17.0, 22.0, 17.0)) for s in (-1, 1)]
    nasal = Ellipsoid((0, 66, 1622), (11.0, 26.0, 22.0))
    sinuses = [Ellipsoid((s * 27, 50, 1614), (13.0, 15.0, 15.0)) for s in (-1, 1)]
    foramen = Tube([(0, -27, 1560), (0, -27, 1612)], [15.0, 15.0])
    skull = Subtract(outer, cavity, foramen, nasal, *orbits, *sinuses)
    head_outer = Union(
        Ellipsoid((0, 2, 1655), (80.0, 102.0, 104.0)),
        Ellipsoid((0, 35, 1572), (56.0, 60.0, 44.0)),
        Ellipsoid((0, 100, 1626), (15.0, 20.0, 28.0)),
    )
    face = Intersect(
        head_outer,
        HalfSpace((0, -1, 0), -46.0),
        HalfSpace((0, 0, -1), -1528.0),
        HalfSpace((0, 0, 1), 1700.0),
    )
    body.add("face", face, ORDER_FACE)
    for s in (-1, 1):
        body.add("face", Ellipsoid((s * 32, 64, 1652), (12.0, 12.0, 12.0)), ORDER_EYE, tissue="eye")
    body.add("skull", skull, ORDER_SKULL)
    body.add("brain", Scaled(brain, (0, -10, 1660), min(f, 1.0)), ORDER_BRAIN)
    body.add("air_internal", Union(nasal, *sinuses), ORDER_SINUS)
