"""Against truth: a simulated cohort of 400 subjects with the phantom's planted age effects.

The measurements are drawn directly from the phantom generator's effect model
(`totalseg.phantom.effects`: volume factors by age and sex, HU shifts by age) with
measurement noise, i.e. a statistics-only cohort. The image-based version (400 phantoms at
6 mm, `--from-segmentations`) is the benchmark in benchmarks/study/.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from totalseg.anatomy import class_map
from totalseg.study import AnalysisConfig, analyze_frame, load_min_volumes

effects = pytest.importorskip("totalseg.phantom.effects")


def _cohort(n_subjects: int = 400, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = list(class_map("v2").values())
    bounds = load_min_volumes()
    age = rng.uniform(20, 90, n_subjects)
    sex = rng.choice(["F", "M"], n_subjects)
    base_ml = {n: max(10.0, 4 * bounds.get(n, 2.0)) for n in names}
    base_hu = {n: rng.uniform(-50, 300) for n in names}
    bone = {n for n in names if n.startswith(("vertebrae", "rib", "hip", "sacrum", "clav"))}
    rows = []
    for i in range(n_subjects):
        for name in names:
            factor = effects.volume_factor(name, age_years=age[i], sex=sex[i])
            noise_hu = 20.0 if name in bone else 6.0
            rows.append(
                (
                    f"p{i:04d}",
                    age[i],
                    sex[i],
                    name,
                    "ok",
                    base_ml[name] * factor * rng.lognormal(0.0, 0.12),
                    base_hu[name]
                    + effects.hu_shift(name, age_years=age[i])
                    + rng.normal(0, noise_hu),
                )
            )
    columns = ["scan_id", "age", "sex", "structure", "status", "volume_ml", "mean_hu"]
    return pd.DataFrame(rows, columns=columns)


def test_every_planted_effect_is_found_and_nothing_else() -> None:
    frame = _cohort()
    names = list(class_map("v2").values())
    planted = {
        (name, "volume_ml" if measure == "volume" else "mean_hu"): size
        for (name, measure), size in effects.planted_structures(names).items()
    }
    assert len(planted) > 40
    result = analyze_frame(frame, min_volumes_ml=load_min_volumes(), config=AnalysisConfig())
    sp = result.spearman.loc[result.spearman["stratum"] == "all"]
    assert len(sp) == 2 * len(names) and sp["n"].min() == 400  # nothing excluded
    for row in sp.itertuples():
        size = planted.get((row.structure, row.measure))
        if size is None:
            assert not row.significant, (row.structure, row.measure, row.r_s, row.p_bonferroni)
        else:
            assert row.significant, (row.structure, row.measure, row.r_s, row.p)
            assert np.sign(row.r_s) == np.sign(size), (row.structure, row.measure)


@pytest.mark.slow
def test_phantom_stats_cohort_of_400_recovers_the_planted_effects() -> None:
    """The phantom generator's stats-only cohort mode (ground-truth volume and mean HU rendered
    per subject on a 6 mm grid): planted effects found with their sign, nothing else."""
    cohort = pytest.importorskip("totalseg.phantom.cohort")
    table = cohort.generate_cohort(
        400, seed=0, mode="stats", spacing_mm=6.0, jobs=2, engine="render", height_trend=None
    )
    names = set(class_map("v2").values())
    frame = table.loc[table["structure"].isin(names)].rename(columns={"image_id": "scan_id"})
    frame = frame.assign(status=np.where(frame["volume_ml"] > 0, "ok", "absent"))
    planted = {
        (name, "volume_ml" if measure == "volume" else "mean_hu"): size
        for (name, measure), size in effects.planted_structures(sorted(names)).items()
    }
    result = analyze_frame(frame, min_volumes_ml=load_min_volumes(), config=AnalysisConfig())
    sp = result.spearman.loc[result.spearman["stratum"] == "all"]
    tested = {(r.structure, r.measure) for r in sp.itertuples() if r.p == r.p}
    assert set(planted) <= tested
    for row in sp.itertuples():
        size = planted.get((row.structure, row.measure))
        if size is None:
            assert not row.significant, (row.structure, row.measure, row.r_s, row.p_bonferroni)
        else:
            assert row.significant and np.sign(row.r_s) == np.sign(size), (row.structure, row.r_s)
