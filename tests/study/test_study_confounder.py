"""Against truth: the phantom cohort's planted confounder (height falls with age).

Unadjusted, every structure's volume seems to shrink with age (the height trend); adjusted for
sex and height, only the planted direct effects remain, with their sign and about their size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from totalseg.phantom import generate_cohort
from totalseg.phantom.effects import confounded_volume_effects, planted_structures
from totalseg.study import AnalysisConfig, analyze_frame, load_study_table

pytest.importorskip("statsmodels")


def check_confounder(n: int, tmp_path: Path, measures: tuple[str, ...]) -> dict[str, int]:
    generate_cohort(n, seed=0).to_parquet(tmp_path / "cohort_stats.parquet")
    frame = load_study_table(tmp_path)
    config = AnalysisConfig(adjust=("sex", "height_cm"), measures=measures)
    result = analyze_frame(frame, min_volumes_ml={}, config=config)
    assert result.adjusted is not None
    names = sorted(frame["structure"].unique())
    planted = {
        (s, "volume_ml" if m == "volume" else m): size
        for (s, m), size in planted_structures(names).items()
    }
    confounded = confounded_volume_effects(names)
    adj = result.adjusted.loc[result.adjusted["stratum"] == "all"]
    counts = {"confounded_found": 0, "confounded": 0}
    for row in adj.itertuples():
        size = planted.get((row.structure, row.measure))
        if size is None:
            assert not row.significant, ("adjusted", row.structure, row.measure, row.p_bonferroni)
        else:
            assert row.significant and np.sign(row.r_s_partial) == np.sign(size), row.structure
            assert row.rlm_significant and np.sign(row.effect_per_decade) == np.sign(size)
        if row.measure == "volume_ml" and size is None and confounded[row.structure] < 0:
            counts["confounded"] += 1
            if row.significant_unadjusted:
                counts["confounded_found"] += 1
                assert row.r_s < 0, row.structure  # the sign of the confounded truth
    planted_volume = adj.loc[adj["measure"] == "volume_ml"].set_index("structure")
    for (structure, measure), size in planted.items():
        if measure == "volume_ml":
            effect = planted_volume.loc[structure, "effect_per_decade"]
            assert effect == pytest.approx(size, abs=0.025), structure
    return counts


def test_adjustment_removes_the_confounded_age_effects(tmp_path: Path) -> None:
    counts = check_confounder(300, tmp_path, ("volume_ml",))
    assert counts["confounded"] > 100
    assert counts["confounded_found"] >= 0.6 * counts["confounded"], counts


@pytest.mark.slow
def test_adjustment_removes_the_confounded_age_effects_at_1000(tmp_path: Path) -> None:
    counts = check_confounder(1000, tmp_path, ("volume_ml", "mean_hu"))
    assert counts["confounded_found"] >= 0.9 * counts["confounded"], counts
