"""The model engine of stats-mode cohorts, and the planted confounder (height falls with age)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from totalseg.errors import InputError
from totalseg.phantom import generate_cohort
from totalseg.phantom.cohort import subject_statistics
from totalseg.phantom.cohort_model import model_statistics
from totalseg.phantom.dataset import subject_seed
from totalseg.phantom.effects import (
    DEFAULT_HEIGHT_TREND,
    HeightTrend,
    confounded_volume_effects,
)


def test_model_engine_matches_the_rendered_truth_of_large_structures() -> None:
    for index in range(2):
        seed = subject_seed(0, index)
        rendered = pd.DataFrame(subject_statistics(seed, spacing_mm=8.0)).set_index("structure")
        model = pd.DataFrame(model_statistics(seed, spacing_mm=8.0)).set_index("structure")
        assert model[["age", "sex", "height_cm", "bmi"]].equals(
            rendered[["age", "sex", "height_cm", "bmi"]]
        )
        large = rendered.index[rendered["volume_ml"] > 150]
        assert len(large) > 20
        rel = (model.loc[large, "volume_ml"] / rendered.loc[large, "volume_ml"] - 1).abs()
        assert rel.median() < 0.10, rel.sort_values().tail()
        organs = ["liver", "spleen", "aorta", "kidney_left", "autochthon_left"]
        diff = (model.loc[organs, "mean_hu"] - rendered.loc[organs, "mean_hu"]).abs()
        assert diff.max() < 5.0, diff
        # a vertebra is a few 8 mm voxels: its rendered rim share is grid noise of ~5 %
        bone = model.loc["vertebrae_L3", "mean_hu"] - rendered.loc["vertebrae_L3", "mean_hu"]
        assert abs(bone) < 35.0


def _cohort(n: int, trend: HeightTrend | None) -> pd.DataFrame:
    return generate_cohort(n, seed=2, height_trend=trend)


def test_height_falls_with_age_by_the_planted_trend() -> None:
    table = _cohort(400, DEFAULT_HEIGHT_TREND)
    subjects = table.drop_duplicates("image_id")
    for _sex, g in subjects.groupby("sex"):
        slope = np.polyfit(g["age"] / 10.0, g["height_cm"], 1)[0]
        assert slope == pytest.approx(-2.5, abs=0.8)
    flat = _cohort(400, None).drop_duplicates("image_id")
    assert abs(spearmanr(flat["age"], flat["height_cm"]).statistic) < 0.12
    assert (flat["age"].to_numpy() == subjects["age"].to_numpy()).all()  # same draws otherwise


def test_volume_grows_with_height_by_the_documented_power() -> None:
    table = _cohort(300, DEFAULT_HEIGHT_TREND)
    liver = table.loc[(table["structure"] == "liver") & (table["sex"] == "M")]
    design = np.column_stack([np.ones(len(liver)), np.log(liver["height_cm"]), liver["age"] / 10.0])
    coef = np.linalg.lstsq(design, np.log(liver["volume_ml"]), rcond=None)[0]
    assert coef[1] == pytest.approx(2.6, abs=0.6)
    assert coef[2] == pytest.approx(0.0, abs=0.03)  # no direct age effect on the liver


def test_confounded_effects_are_recorded() -> None:
    effects = confounded_volume_effects(["liver", "kidney_left", "aorta"])
    height = ((175.0 - 2.5) / 175.0) ** 2.6
    assert effects["liver"] == pytest.approx(height - 1.0)
    assert effects["kidney_left"] == pytest.approx(0.95 * height - 1.0)
    assert effects["aorta"] == pytest.approx(1.08 * height - 1.0)
    assert confounded_volume_effects(["liver"], None)["liver"] == 0.0


def test_engine_and_trend_errors() -> None:
    with pytest.raises(InputError, match="engine 'model' or 'render'"):
        generate_cohort(2, engine="fast")
    with pytest.raises(InputError, match="height trend of -10 to 10 cm"):
        HeightTrend(25.0)
