"""Planted population effects: how age and sex change structure size and attenuation.

The table is data (`DEFAULT_EFFECTS`, `SEX_VOLUME_RATIOS`); callers may pass their own. Every
structure not listed has no age effect at all, so a synthetic cohort has a known truth: the
listed effects, with the listed signs, and nothing else.

Age effects are expressed per decade relative to `REFERENCE_AGE_YEARS`:
- measure "volume": relative volume change per decade (-0.05 = 5 % smaller per decade,
  compounded), applied to the structure's size (organs scale about their centre, tubes such as
  the aorta grow in cross-section);
- measure "mean_hu": additive HU change per decade of the whole structure's attenuation
  (cortex and interior alike, so the structure's mean HU moves by exactly this amount).

The confounder (`HeightTrend`, `DEFAULT_HEIGHT_TREND`): body height falls with age (a secular
trend: later-born cohorts are taller), and every structure's volume grows with height (the
body scales by height/175 cm, x and y by its 0.8th power, so volumes by its
`HEIGHT_VOLUME_EXPONENT` = 2.6th power). An unadjusted analysis therefore sees an age effect
on the volume of every structure, planted or not; adjusting for height removes it.
`confounded_volume_effects` gives the marginal (unadjusted) relative volume change per decade
that the trend induces on top of the planted direct effects. The synthetic cohorts of
`totalseg.phantom.cohort` (stats mode) apply the trend; single phantoms and image datasets
draw height independently of age.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from totalseg.errors import InputError

__all__ = [
    "DEFAULT_EFFECTS",
    "DEFAULT_HEIGHT_TREND",
    "HEIGHT_VOLUME_EXPONENT",
    "REFERENCE_AGE_YEARS",
    "SEX_VOLUME_RATIOS",
    "HeightTrend",
    "PopulationEffect",
    "confounded_volume_effects",
    "hu_shift",
    "planted_structures",
    "volume_factor",
]

REFERENCE_AGE_YEARS = 50.0
REFERENCE_HEIGHT_CM = 175.0
#: volume ~ (height / 175 cm) ** 2.6 (`SubjectParams.scale`: x, y by s**0.8, z by s)
HEIGHT_VOLUME_EXPONENT = 2.6

Measure = Literal["volume", "mean_hu"]


@dataclass(frozen=True)
class PopulationEffect:
    """One planted age effect: structures (fnmatch patterns), measure, change per decade."""

    structures: tuple[str, ...]
    measure: Measure
    per_decade: float
    note: str = ""

    def __post_init__(self) -> None:
        if self.measure not in ("volume", "mean_hu"):
            raise InputError(
                f"Expected measure 'volume' or 'mean_hu', got {self.measure!r} in a "
                "PopulationEffect; fix the effect table."
            )
        if self.measure == "volume" and not -0.5 < self.per_decade < 1.0:
            raise InputError(
                f"Expected a relative volume change per decade in (-0.5, 1.0), got "
                f"{self.per_decade} for {self.structures}; use fractions (-0.05 = -5 %)."
            )

    def applies_to(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.structures)

    @property
    def direction(self) -> str:
        return "increase" if self.per_decade > 0 else "decrease"


_VERTEBRAE = tuple(
    [f"vertebrae_C{i}" for i in range(1, 8)]
    + [f"vertebrae_T{i}" for i in range(1, 13)]
    + [f"vertebrae_L{i}" for i in range(1, 6)]
    + ["vertebrae_S1", "sacrum"]
)

#: The effects the paper reports as age trends (directions), with phantom effect sizes.
DEFAULT_EFFECTS: tuple[PopulationEffect, ...] = (
    PopulationEffect(_VERTEBRAE, "mean_hu", -22.0, "bone attenuation, vertebrae"),
    PopulationEffect(("hip_left", "hip_right"), "mean_hu", -15.0, "bone attenuation, hips"),
    PopulationEffect(("rib_left_*", "rib_right_*"), "mean_hu", -12.0, "bone attenuation, ribs"),
    PopulationEffect(
        ("clavicula_left", "clavicula_right"), "mean_hu", -12.0, "bone attenuation, clavicles"
    ),
    PopulationEffect(
        ("autochthon_left", "autochthon_right"), "mean_hu", -6.0, "muscle attenuation, strongest"
    ),
    PopulationEffect(("gluteus_*",), "mean_hu", -4.0, "muscle attenuation, gluteals"),
    PopulationEffect(
        ("iliopsoas_left", "iliopsoas_right"), "mean_hu", -3.0, "muscle attenuation, iliopsoas"
    ),
    PopulationEffect(("iliopsoas_left", "iliopsoas_right"), "volume", -0.06, "muscle atrophy"),
    PopulationEffect(("kidney_left", "kidney_right"), "volume", -0.05, "kidney volume"),
    PopulationEffect(("pancreas",), "volume", -0.06, "pancreas atrophy"),
    PopulationEffect(("aorta",), "volume", 0.08, "aortic dilatation (cross-section)"),
)

#: Male / female volume ratio beyond what body height explains (applied as sqrt each way).
SEX_VOLUME_RATIOS: dict[str, float] = {
    "autochthon_*": 1.30,
    "iliopsoas_*": 1.35,
    "gluteus_*": 1.20,
    "kidney_left": 1.10,
    "kidney_right": 1.10,
    "liver": 1.10,
    "spleen": 1.15,
    "heart*": 1.15,
    "aorta": 1.15,
}


def _decades(age_years: float) -> float:
    return (float(age_years) - REFERENCE_AGE_YEARS) / 10.0


def volume_factor(
    name: str,
    *,
    age_years: float,
    sex: str,
    effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS,
    sex_ratios: dict[str, float] | None = None,
) -> float:
    """Planted volume factor of one structure for a subject (1.0 = the reference adult)."""
    factor = 1.0
    for effect in effects:
        if effect.measure == "volume" and effect.applies_to(name):
            factor *= (1.0 + effect.per_decade) ** _decades(age_years)
    ratios = SEX_VOLUME_RATIOS if sex_ratios is None else sex_ratios
    for pattern, ratio in ratios.items():
        if fnmatchcase(name, pattern):
            factor *= ratio**0.5 if sex == "M" else ratio**-0.5
            break
    return factor


def hu_shift(
    name: str, *, age_years: float, effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS
) -> float:
    """Planted HU shift of one structure for a subject of this age."""
    return sum(
        e.per_decade * _decades(age_years)
        for e in effects
        if e.measure == "mean_hu" and e.applies_to(name)
    )


def planted_structures(
    names: Sequence[str], effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS
) -> dict[tuple[str, str], float]:
    """(structure, measure) -> per-decade size, for every structure an effect applies to."""
    out: dict[tuple[str, str], float] = {}
    for effect in effects:
        for name in names:
            if effect.applies_to(name):
                key = (name, effect.measure)
                out[key] = out.get(key, 0.0) + effect.per_decade
    return out


@dataclass(frozen=True)
class HeightTrend:
    """The planted confounder: height changes by `cm_per_decade` per decade of age.

    A subject's height is its drawn height (sex-specific normal, independent of age) plus
    `cm_per_decade` x (age - 50) / 10, clipped to 145-205 cm. Negative: older subjects are
    shorter (born earlier). The default, -2.5 cm per decade, is about twice the secular trend
    of real populations, so that the confounding is plain at a few hundred subjects.
    """

    cm_per_decade: float = -2.5

    def __post_init__(self) -> None:
        if not -10.0 <= self.cm_per_decade <= 10.0:
            raise InputError(
                f"Expected a height trend of -10 to 10 cm per decade, got {self.cm_per_decade}."
            )

    def height_cm(self, drawn_height_cm: float, age_years: float) -> float:
        """The subject's height: drawn height plus the trend at its age, clipped to 145-205."""
        shifted = float(drawn_height_cm) + self.cm_per_decade * _decades(age_years)
        return min(205.0, max(145.0, shifted))

    @property
    def volume_factor_per_decade(self) -> float:
        """Volume factor per decade of age that the trend induces (all structures)."""
        ratio = (REFERENCE_HEIGHT_CM + self.cm_per_decade) / REFERENCE_HEIGHT_CM
        return float(ratio**HEIGHT_VOLUME_EXPONENT)


DEFAULT_HEIGHT_TREND = HeightTrend()


def confounded_volume_effects(
    names: Sequence[str],
    trend: HeightTrend | None = DEFAULT_HEIGHT_TREND,
    effects: Sequence[PopulationEffect] = DEFAULT_EFFECTS,
) -> dict[str, float]:
    """structure -> marginal relative volume change per decade (planted direct x height trend).

    What an analysis that ignores height estimates (to first order, the trend taken at a
    175 cm reference height); the direct effect alone is `planted_structures`.
    """
    height = 1.0 if trend is None else trend.volume_factor_per_decade
    direct = planted_structures(names, effects)
    return {n: (1.0 + direct.get((n, "volume"), 0.0)) * height - 1.0 for n in names}
