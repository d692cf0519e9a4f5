"""Synthetic cohorts: planted age effects are recovered with the right sign, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from totalseg.errors import InputError
from totalseg.phantom import COHORT_COLUMNS, generate_cohort, planted_structures
from totalseg.phantom.labels import structure_names

#: the rendered truth without the confounder (the planted effects and nothing else)
_RENDER = {"engine": "render", "height_trend": None}


def _age_tests(table):
    planted = planted_structures(structure_names())
    out = []
    for name, group in table.groupby("structure"):
        for measure, column in (("volume", "volume_ml"), ("mean_hu", "mean_hu")):
            values = group[[column, "age"]].dropna()
            if values[column].nunique() < 3:
                continue
            rho, p = spearmanr(values["age"], values[column])
            out.append((name, measure, float(rho), float(p), planted.get((name, measure))))
    return out


def _check(table, *, detect_all: bool):
    tests = _age_tests(table)
    alpha = 0.05 / len(tests)  # Bonferroni over every structure x measure
    spurious = [(n, m, r) for n, m, r, p, eff in tests if eff is None and p < alpha]
    assert spurious == []
    planted = [(n, m, r, p, eff) for n, m, r, p, eff in tests if eff is not None]
    assert len(planted) == 70
    wrong_sign = [(n, m) for n, m, r, _p, eff in planted if np.sign(r) != np.sign(eff)]
    assert wrong_sign == []
    missed = [(n, m, p) for n, m, _r, p, _eff in planted if p >= alpha]
    if detect_all:
        assert missed == []
    return tests


@pytest.mark.slow
def test_planted_effects_in_a_200_subject_cohort():
    table = generate_cohort(200, seed=0, spacing_mm=8.0, jobs=2, **_RENDER)
    assert len(table) == 200 * len(structure_names())
    _check(table, detect_all=True)
    by_sex = table[table.structure == "autochthon_left"].groupby("sex")["volume_ml"].mean()
    assert by_sex["M"] > by_sex["F"]


def test_planted_effects_have_the_right_sign_in_a_small_cohort():
    table = generate_cohort(60, seed=1, spacing_mm=10.0, jobs=2, **_RENDER)
    assert tuple(table.columns) == COHORT_COLUMNS
    tests = _check(table, detect_all=False)
    strong = {
        (n, m): p
        for n, m, _r, p, _eff in tests
        if (n, m)
        in {
            ("vertebrae_L1", "mean_hu"),
            ("autochthon_left", "mean_hu"),
            ("aorta", "volume"),
            ("kidney_left", "volume"),
        }
    }
    assert len(strong) == 4 and max(strong.values()) < 0.05


def test_cohort_is_deterministic_and_independent_of_jobs(tmp_path):
    a = generate_cohort(3, seed=5, spacing_mm=10.0, jobs=1)
    b = generate_cohort(3, seed=5, spacing_mm=10.0, jobs=2, out_dir=tmp_path)
    assert a.equals(b)
    assert (tmp_path / "cohort_stats.csv").exists()
    assert (tmp_path / "cohort_stats.parquet").exists()


def test_cohort_argument_errors():
    with pytest.raises(InputError, match="mode 'stats' or 'image'"):
        generate_cohort(2, mode="video")
    with pytest.raises(InputError, match="n >= 1"):
        generate_cohort(0)
    with pytest.raises(InputError, match="output folder"):
        generate_cohort(2, mode="image")
    with pytest.raises(InputError, match="statistics spacing"):
        generate_cohort(2, spacing_mm=0.5)
