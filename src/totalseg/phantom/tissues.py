"""Tissue attenuation (HU) per contrast phase, and the label ids of structures and tissues.

Every structure and every non-class tissue has an interior HU per phase (native, arterial,
portal venous), optionally a rim (cortex, wall) of given HU and thickness, a texture amplitude
(small-scale heterogeneity, HU sd) and a between-subject sd. A subject's values add its planted
age shift (`effects.py`) and a random offset drawn from its seed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from totalseg.anatomy import structures
from totalseg.phantom.effects import DEFAULT_EFFECTS, PopulationEffect, hu_shift
from totalseg.phantom.params import PHASES, SubjectParams

__all__ = ["LABEL_NAMES", "N_STRUCTURES", "TISSUE_TABLE", "TissueHU", "label_id", "resolve"]

#: Non-class tissues rendered into the image (label ids after the 124 structures).
NON_CLASS = (
    "skin", "fat_subcutaneous", "muscle", "fat_visceral", "fat_mediastinal", "csf", "disc",
    "bone_other", "air_internal", "artery", "vein", "table", "table_core", "uterus",
)  # fmt: skip
LABEL_NAMES: tuple[str, ...] = tuple(s.name for s in structures()) + NON_CLASS
N_STRUCTURES = len(structures())
_IDS = {name: i + 1 for i, name in enumerate(LABEL_NAMES)}


def label_id(name: str) -> int:
    """Internal label id (1-based) of a structure or tissue name."""
    return _IDS[name]


@dataclass(frozen=True)
class TissueHU:
    """HU of one tissue for one subject and phase."""

    inner_hu: float
    rim_hu: float | None = None
    rim_mm: float = 0.0
    texture_hu: float = 0.0


# name: (native, arterial, portal), texture sd, subject sd, rim (native, arterial, portal), rim mm
_P3 = tuple[float, float, float]
_ROW = tuple[_P3, float, float, _P3 | None, float]


def _const(v: float, tex: float = 5.0, subj: float = 5.0) -> _ROW:
    return ((v, v, v), tex, subj, None, 0.0)


def _bone(inner: float, rim: float, rim_mm: float, subj: float = 20.0) -> _ROW:
    return ((inner, inner, inner), 35.0, subj, (rim, rim, rim), rim_mm)


_ARTERY: _P3 = (42.0, 320.0, 185.0)
_VEIN: _P3 = (40.0, 75.0, 165.0)
_MUSCLE: _P3 = (48.0, 52.0, 58.0)
_TABLE: dict[str, _ROW] = {
    "skin": _const(25.0, 8.0), "fat_subcutaneous": _const(-104.0, 10.0, 8.0),
    "fat_visceral": _const(-96.0, 12.0, 8.0), "fat_mediastinal": _const(-90.0, 12.0, 6.0),
    "muscle": (_MUSCLE, 8.0, 4.0, None, 0.0), "csf": _const(8.0, 3.0, 2.0),
    "disc": _const(90.0, 8.0, 8.0), "bone_other": _bone(220.0, 1000.0, 2.0),
    "air_internal": _const(-1000.0, 0.0, 0.0), "artery": (_ARTERY, 6.0, 15.0, None, 0.0),
    "vein": (_VEIN, 6.0, 15.0, None, 0.0), "hepatic_vein": ((40, 60, 175), 6.0, 10.0, None, 0),
    "table": _const(250.0, 10.0, 0.0), "table_core": _const(-880.0, 20.0, 0.0),
    "uterus": ((45, 80, 105), 8.0, 8.0, None, 0.0), "eye": _const(12.0, 3.0, 2.0),
    "spleen": ((45, 125, 118), 7.0, 6.0, None, 0.0),
    "kidney": ((28, 75, 150), 8.0, 8.0, (28, 195, 168), 6.0),
    "kidney_cyst": _const(7.0, 3.0, 3.0), "gallbladder": _const(12.0, 3.0, 4.0),
    "liver": ((55, 70, 110), 6.0, 10.0, None, 0.0),
    "stomach": ((18, 18, 20), 10.0, 5.0, (40, 95, 105), 3.0),
    "pancreas": ((35, 105, 92), 9.0, 10.0, None, 0.0),
    "adrenal_gland": ((25, 60, 55), 6.0, 5.0, None, 0.0),
    "lung": _const(-858.0, 25.0, 25.0),
    "esophagus": ((32, 40, 42), 6.0, 4.0, (40, 80, 82), 3.0),
    "trachea": ((-1000, -1000, -1000), 0.0, 0.0, (60, 60, 60), 2.0),
    "thyroid_gland": ((95, 165, 140), 8.0, 10.0, None, 0.0),
    "small_bowel": ((18, 18, 18), 8.0, 5.0, (40, 110, 120), 2.5),
    "duodenum": ((18, 18, 18), 8.0, 5.0, (40, 105, 115), 2.5),
    "colon": ((-40, -40, -40), 30.0, 10.0, (40, 80, 90), 2.5),
    "urinary_bladder": ((8, 8, 8), 3.0, 3.0, (40, 60, 70), 2.5),
    "prostate": ((38, 60, 75), 6.0, 5.0, None, 0.0), "vertebrae": _bone(165.0, 620.0, 1.0, 30.0),
    "sacrum": _bone(185.0, 600.0, 1.2, 25.0), "rib": _bone(180.0, 650.0, 0.9),
    "costal_cartilages": _const(170.0, 30.0, 15.0), "sternum": _bone(190.0, 600.0, 1.2),
    "clavicula": _bone(210.0, 850.0, 1.8), "scapula": _bone(220.0, 750.0, 1.0),
    "humerus": _bone(110.0, 1100.0, 3.5), "femur": _bone(120.0, 1100.0, 5.0),
    "hip": _bone(210.0, 800.0, 1.8), "skull": _bone(700.0, 1350.0, 2.5),
    "heart_left": ((40, 330, 172), 5.0, 12.0, None, 0.0),
    "heart_right": ((40, 260, 168), 5.0, 12.0, None, 0.0),
    "heart_myocardium": ((45, 110, 100), 5.0, 6.0, None, 0.0),
    "aorta": (_ARTERY, 5.0, 15.0, None, 0.0), "pulmonary_artery": ((40, 300, 170), 5, 12, None, 0),
    "pulmonary_vein": ((40, 310, 170), 5.0, 12.0, None, 0.0),
    "brachiocephalic_vein_left": ((40, 500, 165), 10.0, 30.0, None, 0.0),
    "superior_vena_cava": ((40, 380, 165), 10.0, 30.0, None, 0.0),
    "inferior_vena_cava": ((40, 80, 150), 6.0, 12.0, None, 0.0),
    "portal_vein_and_splenic_vein": ((40, 120, 185), 5.0, 12.0, None, 0.0),
    "iliac_vena": ((40, 70, 140), 5.0, 10.0, None, 0.0),
    "spinal_cord": _const(33.0, 3.0, 3.0), "brain": _const(35.0, 4.0, 3.0),
    "face": ((-35, -32, -28), 25.0, 8.0, None, 0.0),
    "autochthon": ((40, 44, 50), 8.0, 4.0, None, 0.0), "gluteus": (_MUSCLE, 8.0, 4.0, None, 0.0),
    "iliopsoas": ((45, 49, 55), 8.0, 4.0, None, 0.0),
}  # fmt: skip
_ALIASES = {
    "heart_ventricle_left": "heart_left", "heart_atrium_left": "heart_left",
    "atrial_appendage_left": "heart_left", "heart_ventricle_right": "heart_right",
    "heart_atrium_right": "heart_right", "heart": "heart_left", "vertebrae_S1": "sacrum",
    "brachiocephalic_trunk": "artery", "brachiocephalic_vein_right": "vein",
}  # fmt: skip
_PREFIXES = (
    "kidney_cyst", "kidney", "adrenal_gland", "lung", "vertebrae", "rib", "clavicula", "scapula",
    "humerus", "femur", "hip", "autochthon", "gluteus", "iliopsoas", "iliac_vena",
    "iliac_artery", "subclavian_artery", "common_carotid_artery",
)  # fmt: skip
_PREFIX_TARGET = {"iliac_artery": "artery", "subclavian_artery": "artery",
                  "common_carotid_artery": "artery"}  # fmt: skip


def _key(name: str) -> str:
    if name in _TABLE:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return _PREFIX_TARGET.get(prefix, prefix)
    raise KeyError(f"no HU model for {name!r}")


#: every tissue name the renderer may meet -> its table row key
TISSUE_TABLE: dict[str, str] = {n: _key(n) for n in (*LABEL_NAMES, "hepatic_vein", "eye")}


def resolve(
    params: SubjectParams,
    effects: tuple[PopulationEffect, ...] | list[PopulationEffect] = (DEFAULT_EFFECTS),
) -> dict[str, TissueHU]:
    """Per-tissue HU of one subject: phase, planted age shift, random subject offset."""
    phase = PHASES.index(params.phase)
    rng = np.random.default_rng([int(params.seed), zlib.crc32(b"hu")])
    offsets = {key: float(rng.normal()) for key in sorted(_TABLE)}
    out = {}
    for name, key in TISSUE_TABLE.items():
        inner, tex, subj, rim, rim_mm = _TABLE[key]
        shift = hu_shift(name, age_years=params.age_years, effects=effects)
        shift += subj * offsets[key]
        rim_hu = None if rim is None else float(rim[phase]) + shift
        if phase == 1 and key == "spleen":
            tex = 25.0
        out[name] = TissueHU(float(inner[phase]) + shift, rim_hu, float(rim_mm), float(tex))
    return out
