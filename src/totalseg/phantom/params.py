"""Subject parameters of a phantom, and how they are drawn from one seed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from totalseg.errors import InputError

__all__ = [
    "FOVS",
    "ORIENTATIONS",
    "PHASES",
    "SubjectParams",
    "sample_subject_params",
]

Fov = Literal["whole-body", "thorax-abdomen", "abdomen"]
Phase = Literal["native", "arterial", "portal-venous"]

FOVS: tuple[str, ...] = ("whole-body", "thorax-abdomen", "abdomen")
PHASES: tuple[str, ...] = ("native", "arterial", "portal-venous")
#: Orientation codes drawn by `orientation="random"` (any valid code is accepted explicitly).
ORIENTATIONS: tuple[str, ...] = ("RAS", "LPS", "LAS", "RPS", "LPI", "PIR", "ASL", "SRA", "ILP")

_AXES = ({"R", "L"}, {"A", "P"}, {"S", "I"})


def _check_orientation(code: str) -> str:
    code = str(code).upper()
    ok = len(code) == 3 and all(any(c in ax for c in code) for ax in _AXES)
    ok = ok and all(c in "RLAPSI" for c in code)
    if not ok:
        raise InputError(
            f"Expected a 3-letter orientation code with one of R/L, A/P and S/I each "
            f"(e.g. RAS, LPS, PIR), got {code!r}."
        )
    return code


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InputError(f"Expected {what} one of {', '.join(allowed)}, got {value!r}.")
    return value


@dataclass(frozen=True)
class SubjectParams:
    """Everything that defines one phantom; `generate_subject(params)` is deterministic in it."""

    seed: int
    sex: str = "M"
    age_years: float = 50.0
    height_cm: float = 175.0
    bmi: float = 24.0
    phase: str = "portal-venous"
    fov: str = "whole-body"
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5)
    orientation: str = "RAS"
    roll_deg: float = 0.0
    arms_up: bool = False
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fov_margin_mm: tuple[float, float, float] = (20.0, 20.0, 20.0)
    noise_hu: float = 15.0
    psf_mm: float = 0.7
    table: bool = True
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sex not in ("M", "F"):
            raise InputError(f"Expected sex 'M' or 'F', got {self.sex!r}.")
        _choice(self.phase, PHASES, "phase")
        _choice(self.fov, FOVS, "fov")
        object.__setattr__(self, "orientation", _check_orientation(self.orientation))
        sp = tuple(float(s) for s in np.broadcast_to(np.asarray(self.spacing_mm, float), (3,)))
        if not all(0.3 <= s <= 10.0 for s in sp):
            raise InputError(
                f"Expected spacing between 0.3 and 10 mm per axis, got {sp}; use e.g. 1.5 or 3.0."
            )
        object.__setattr__(self, "spacing_mm", sp)
        checks = [
            (18 <= self.age_years <= 100, f"age 18-100 years, got {self.age_years}"),
            (140 <= self.height_cm <= 210, f"height 140-210 cm, got {self.height_cm}"),
            (15 <= self.bmi <= 45, f"BMI 15-45, got {self.bmi}"),
            (0 <= self.noise_hu <= 100, f"noise 0-100 HU, got {self.noise_hu}"),
            (0 <= self.psf_mm <= 5, f"PSF sigma 0-5 mm, got {self.psf_mm}"),
            (abs(self.roll_deg) <= 30, f"roll within +-30 degrees, got {self.roll_deg}"),
        ]
        for ok, text in checks:
            if not ok:
                raise InputError(f"Expected {text}.")

    @property
    def scale(self) -> tuple[float, float, float]:
        """Size of this body relative to the 175 cm reference (x, y, z)."""
        s = self.height_cm / 175.0
        return (s**0.8, s**0.8, s)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spacing_mm"] = list(self.spacing_mm)
        d["shift_mm"] = list(self.shift_mm)
        d["fov_margin_mm"] = list(self.fov_margin_mm)
        return d

    def with_(self, **changes: Any) -> SubjectParams:
        return replace(self, **changes)


def _spacing_choice(rng: np.random.Generator) -> tuple[float, float, float]:
    inplane = float(rng.choice([0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5]))
    slice_mm = float(rng.choice([0.6, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0]))
    return (inplane, inplane, slice_mm)


def sample_subject_params(
    seed: int,
    *,
    fov: str | None = None,
    spacing_mm: float | tuple[float, float, float] | None = None,
    phase: str | None = None,
    orientation: str | None = "RAS",
    sex: str | None = None,
    age_years: float | None = None,
    max_voxels: int = 40_000_000,
) -> SubjectParams:
    """Draw a subject from one seed. Options fix a parameter ("random" or None = draw it).

    Every random value is drawn in a fixed order whatever the options, so fixing one parameter
    never changes the others. With a drawn spacing the slice spacing is coarsened until the
    volume has at most `max_voxels` voxels.
    """
    rng = np.random.default_rng([int(seed), 0x5EED])
    d_sex = "M" if rng.random() < 0.55 else "F"
    d_age = float(np.clip(rng.normal(60.0, 15.0), 18.0, 95.0))
    z_height = rng.normal()
    z_bmi = rng.normal()
    d_phase = str(rng.choice(PHASES, p=[0.35, 0.2, 0.45]))
    d_fov = str(rng.choice(FOVS, p=[0.3, 0.35, 0.35]))
    d_spacing = _spacing_choice(rng)
    d_orient = str(rng.choice(ORIENTATIONS))
    roll = float(rng.normal(0.0, 2.5))
    shift = tuple(float(v) for v in rng.normal(0.0, [15.0, 10.0, 30.0]))
    margins = tuple(float(v) for v in rng.uniform([5, 10, 0], [45, 40, 40]))
    noise = float(rng.uniform(8.0, 22.0))
    psf = float(rng.uniform(0.5, 1.0))
    table = bool(rng.random() < 0.9)
    arms_up_draw = rng.random()

    sex_v = d_sex if sex in (None, "random") else str(sex)
    mean_h, sd_h = (177.0, 7.0) if sex_v == "M" else (164.0, 6.5)
    fov_v = d_fov if fov in (None, "random") else str(fov)
    _choice(fov_v, FOVS, "fov")
    phase_v = d_phase if phase in (None, "random") else str(phase)
    orient_v = d_orient if orientation in (None, "random") else str(orientation)
    spacing: tuple[float, float, float] = d_spacing
    if spacing_mm is not None:
        sx, sy, sz = (float(s) for s in np.broadcast_to(np.asarray(spacing_mm, float), (3,)))
        spacing = (sx, sy, sz)
    params = SubjectParams(
        seed=int(seed),
        sex=sex_v,
        age_years=d_age if age_years is None else float(age_years),
        height_cm=float(np.clip(mean_h + sd_h * z_height, 145.0, 205.0)),
        bmi=float(np.clip(26.0 * math.exp(0.17 * z_bmi), 17.0, 42.0)),
        phase=phase_v,
        fov=fov_v,
        spacing_mm=spacing,
        orientation=orient_v,
        roll_deg=float(np.clip(roll, -8.0, 8.0)),
        arms_up=fov_v != "whole-body" and arms_up_draw < 0.7,
        shift_mm=shift,  # type: ignore[arg-type]
        fov_margin_mm=margins,  # type: ignore[arg-type]
        noise_hu=noise,
        psf_mm=psf,
        table=table,
    )
    if spacing_mm is None:
        params = _limit_voxels(params, max_voxels)
    return params


def _limit_voxels(params: SubjectParams, max_voxels: int) -> SubjectParams:
    from totalseg.phantom.grid import fov_extent_mm

    lo, hi = fov_extent_mm(params)
    sx, sy, sz = params.spacing_mm
    extent = np.asarray(hi) - np.asarray(lo)
    n = float(np.prod(extent / np.array([sx, sy, sz])))
    choices = (1.0, 1.25, 1.5, 2.0, 3.0, 5.0)
    while n > max_voxels:
        bigger = [c for c in choices if c > sz]
        if bigger:
            sz = bigger[0]
        else:
            sx = sy = min(sx * 1.25, 5.0)
        n = float(np.prod(extent / np.array([sx, sy, sz])))
    return params.with_(spacing_mm=(sx, sy, sz))
