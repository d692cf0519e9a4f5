"""The body plan: parts (label, shape, tissue, paint order) of one subject in the reference frame.

Reference frame: mm, x = patient left, y = anterior, z = height above the floor of a 175 cm
adult standing upright (the patient lies supine in the scanner, which the grid handles). The
whole anatomy is written for this reference adult; a subject differs by a global scale (height),
fat thicknesses (BMI, sex), per-structure size factors (random jitter x planted age/sex effects)
and small random shape deformations, all drawn from the subject's seed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType

import numpy as np

from totalseg.anatomy import structures
from totalseg.phantom.effects import (
    DEFAULT_EFFECTS,
    PopulationEffect,
    hu_shift,
    volume_factor,
)
from totalseg.phantom.params import SubjectParams
from totalseg.phantom.shapes import Scaled, Shape

__all__ = ["Body", "Part", "jitter_log_sd", "spine_levels", "spine_y"]

#: Vertebral levels: name -> (z centre, half height, body semi-axes rx, ry) in the reference frame.
_LEVEL_Z = {
    "C1": 1565, "C2": 1545, "C3": 1526, "C4": 1509, "C5": 1492, "C6": 1475, "C7": 1457,
    "T1": 1436, "T2": 1414, "T3": 1391, "T4": 1367, "T5": 1343, "T6": 1318, "T7": 1292,
    "T8": 1266, "T9": 1239, "T10": 1211, "T11": 1182, "T12": 1151,
    "L1": 1117, "L2": 1081, "L3": 1044, "L4": 1007, "L5": 970,
}  # fmt: skip
_SPINE_Y = np.array(
    [[1600, -22], [1570, -18], [1500, -10], [1450, -22], [1400, -45], [1330, -60], [1260, -62],
     [1180, -55], [1120, -42], [1060, -30], [1010, -28], [975, -36], [940, -55]],
    dtype=np.float64,
)  # fmt: skip


def spine_y(z: float | np.ndarray) -> np.ndarray:
    """y of the vertebral body centres at height z (the spine's sagittal curve)."""
    return np.asarray(np.interp(z, _SPINE_Y[::-1, 0], _SPINE_Y[::-1, 1]))


@cache
def spine_levels() -> Mapping[str, tuple[float, float, float, float, float]]:
    """Level -> (z, y, half height, rx, ry) of each vertebral body (C1 has none; rx, ry = ring)."""
    out = {}
    names = list(_LEVEL_Z)
    for i, name in enumerate(names):
        z = float(_LEVEL_Z[name])
        step = z - _LEVEL_Z[names[i + 1]] if i + 1 < len(names) else 36.0
        region = name[0]
        t = i / (len(names) - 1)
        rx = 10.0 + 16.0 * t**0.9 if region != "C" else 9.0 + 0.6 * i
        ry = 7.5 + 10.0 * t if region != "C" else 7.0 + 0.3 * i
        hh = step * (0.40 if region == "C" else 0.41 if region == "T" else 0.40)
        out[name] = (z, float(spine_y(z)), hh, rx, ry)
    return MappingProxyType(out)


@dataclass(frozen=True)
class Part:
    """One painted piece: a label (structure or tissue name), its shape, HU tissue, paint order."""

    label: str
    shape: Shape
    tissue: str
    order: float


#: Relative sd (log scale) of random volume jitter per structure group.
_JITTER_SD = {"organ": 0.12, "bone": 0.04, "muscle": 0.10, "vessel": 0.08}
_OWN_SD = {"urinary_bladder": 0.45, "colon": 0.2, "small_bowel": 0.2, "stomach": 0.3,
           "gallbladder": 0.35, "kidney_cyst_left": 0.3, "kidney_cyst_right": 0.3}  # fmt: skip


def jitter_log_sd(name: str) -> float:
    """SD of log(jitter) of a structure across subjects (group, pair and own terms)."""
    group = next(st.group for st in structures() if st.name == name)
    shared = _JITTER_SD[group] if group in ("bone", "muscle") else 0.0
    own = _OWN_SD.get(name, 0.03)
    return float(math.sqrt(shared**2 + _JITTER_SD[group] ** 2 + own**2))


@dataclass
class Body:
    """A subject under construction: parameters, random streams, size factors, parts."""

    params: SubjectParams
    effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS
    sex_ratios: dict[str, float] | None = None
    parts: list[Part] = field(default_factory=list)

    def __post_init__(self) -> None:
        p = self.params
        s = float(np.mean(p.scale))
        sex_fat = 1.25 if p.sex == "F" else 0.9
        #: subcutaneous fat of the trunk, reference-frame mm
        self.fat_mm = max(4.0, (p.bmi - 17.0) * 2.4 * sex_fat) / s
        self.fat_legs_mm = self.fat_mm * (1.3 if p.sex == "F" else 0.8)
        #: visceral fat: how much the abdominal cavity grows beyond the organs
        self.visceral_mm = max(0.0, (p.bmi - 20.0) * (3.0 if p.sex == "M" else 1.8)) / s
        self._jitter = self._draw_jitter()

    def rng(self, key: str) -> np.random.Generator:
        """An independent random stream per named use, fixed by the subject seed."""
        return np.random.default_rng([int(self.params.seed), zlib.crc32(key.encode())])

    def _draw_jitter(self) -> dict[str, float]:
        rng = self.rng("jitter")
        common = {g: rng.normal(0.0, sd) for g, sd in _JITTER_SD.items()}
        pair = {}
        out = {}
        for st in structures():
            base = st.name.replace("_left", "").replace("_right", "")
            if base not in pair:
                pair[base] = rng.normal(0.0, _JITTER_SD[st.group])
            own = rng.normal(0.0, _OWN_SD.get(st.name, 0.03))
            shared = common[st.group] if st.group in ("bone", "muscle") else 0.0
            out[st.name] = float(np.exp(shared + pair[base] + own))
        return out

    def jitter(self, name: str) -> float:
        """The structure's random volume factor (1.0 for names without one)."""
        return self._jitter.get(name, 1.0)

    def vol(self, name: str) -> float:
        """Volume factor of a structure: random jitter x planted age and sex effects."""
        p = self.params
        return self.jitter(name) * volume_factor(
            name,
            age_years=p.age_years,
            sex=p.sex,
            effects=self.effects,
            sex_ratios=self.sex_ratios,
        )

    def lin(self, name: str) -> float:
        """Linear size factor (cube root of the volume factor)."""
        return float(self.vol(name) ** (1.0 / 3.0))

    def hu_shift(self, name: str) -> float:
        return hu_shift(name, age_years=self.params.age_years, effects=self.effects)

    def add(self, label: str, shape: Shape, order: float, tissue: str | None = None) -> None:
        self.parts.append(Part(label, shape, tissue or label, float(order)))

    def organ(self, name: str, shape: Shape, center: Sequence[float], order: float) -> Shape:
        """Add an organ scaled about its centre by its size factor; returns the scaled shape."""
        scaled = Scaled(shape, center, self.lin(name))
        self.add(name, scaled, order)
        return scaled
