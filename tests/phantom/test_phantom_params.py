"""Subject parameters: validation, determinism, independence of the drawn values."""

from __future__ import annotations

import pytest

from totalseg.errors import InputError
from totalseg.phantom import SubjectParams, sample_subject_params
from totalseg.phantom.effects import (
    DEFAULT_EFFECTS,
    PopulationEffect,
    hu_shift,
    planted_structures,
    volume_factor,
)


def test_same_seed_same_params_and_options_do_not_shift_other_draws():
    a = sample_subject_params(7)
    assert a == sample_subject_params(7)
    b = sample_subject_params(7, fov="abdomen", phase="native", spacing_mm=2.0, sex="F")
    assert (b.age_years, b.bmi, b.noise_hu, b.roll_deg) == (
        a.age_years,
        a.bmi,
        a.noise_hu,
        a.roll_deg,
    )
    assert (b.fov, b.phase, b.spacing_mm, b.sex) == ("abdomen", "native", (2.0, 2.0, 2.0), "F")
    assert sample_subject_params(8) != a


def test_drawn_values_stay_in_range_and_voxel_budget():
    from totalseg.phantom.grid import fov_extent_mm

    for seed in range(30):
        p = sample_subject_params(seed, orientation="random", max_voxels=20_000_000)
        assert 18 <= p.age_years <= 95 and 145 <= p.height_cm <= 205 and 17 <= p.bmi <= 42
        lo, hi = fov_extent_mm(p)
        n = 1.0
        for extent, s in zip(hi - lo, p.spacing_mm, strict=False):
            n *= extent / s
        assert n <= 20_000_000 * 1.01
        assert len(p.orientation) == 3


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"sex": "X"}, "sex 'M' or 'F'"),
        ({"phase": "venous"}, "phase one of"),
        ({"fov": "legs"}, "fov one of"),
        ({"orientation": "RRS"}, "orientation code"),
        ({"orientation": "RASX"}, "orientation code"),
        ({"spacing_mm": (0.1, 1.0, 1.0)}, "spacing between"),
        ({"age_years": 10}, "age 18-100"),
        ({"height_cm": 300}, "height 140-210"),
        ({"bmi": 70}, "BMI 15-45"),
        ({"roll_deg": 45}, "roll within"),
    ],
)
def test_invalid_params_are_rejected(changes, match):
    with pytest.raises(InputError, match=match):
        SubjectParams(seed=0, **changes)


def test_effect_table_validation_and_lookups():
    with pytest.raises(InputError, match="measure 'volume' or 'mean_hu'"):
        PopulationEffect(("liver",), "size", 0.1)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="relative volume change"):
        PopulationEffect(("liver",), "volume", 5.0)
    assert volume_factor("kidney_left", age_years=70, sex="M", sex_ratios={}) == pytest.approx(
        0.95**2
    )
    assert volume_factor("liver", age_years=90, sex="M", sex_ratios={}) == 1.0
    assert hu_shift("vertebrae_L1", age_years=60) == pytest.approx(-22.0)
    assert hu_shift("liver", age_years=90) == 0.0
    planted = planted_structures(["rib_left_3", "aorta", "liver"], DEFAULT_EFFECTS)
    assert planted == {("rib_left_3", "mean_hu"): -12.0, ("aorta", "volume"): 0.08}
