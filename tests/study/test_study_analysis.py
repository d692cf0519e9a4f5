"""Analysis: equal to scipy.stats on the same numbers, exclusions, and planted effects."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from totalseg.anatomy import structures
from totalseg.errors import ConfigError, ImageFileError, InputError
from totalseg.study import (
    AnalysisConfig,
    analyze_frame,
    apply_exclusions,
    load_min_volumes,
    shipped_min_volumes_path,
)


def _frame(n_scans: int = 120, seed: int = 0) -> pd.DataFrame:
    """Random tidy table: 3 structures, liver volume falls with age, HU random."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 90, n_scans).round(1)
    sex = rng.choice(["F", "M"], n_scans)
    rows = []
    for i in range(n_scans):
        for name, base in (("liver", 1500.0), ("spleen", 200.0), ("pancreas", 70.0)):
            slope = -8.0 if name == "liver" else 0.0
            rows.append(
                {
                    "scan_id": f"s{i:04d}",
                    "age": age[i],
                    "sex": sex[i],
                    "structure": name,
                    "status": "ok",
                    "volume_ml": base + slope * (age[i] - 50) + rng.normal(0, base * 0.1),
                    "mean_hu": rng.normal(50, 10),
                }
            )
    return pd.DataFrame(rows)


def _quartile_groups(df: pd.DataFrame, structure: str, measure: str) -> list[np.ndarray]:
    scans = df.drop_duplicates("scan_id")
    q = dict(zip(scans["scan_id"], pd.qcut(scans["age"], 4, labels=False), strict=True))
    rows = df.loc[df["structure"] == structure]
    codes = rows["scan_id"].map(q).to_numpy()
    return [rows[measure].to_numpy()[codes == k] for k in range(4)]


@pytest.mark.parametrize("measure", ["volume_ml", "mean_hu"])
def test_numbers_equal_scipy_stats(measure: str) -> None:
    df = _frame()
    result = analyze_frame(df, min_volumes_ml={}, config=AnalysisConfig())
    for structure in ("liver", "spleen", "pancreas"):
        rows = df.loc[df["structure"] == structure]
        x, y = rows["age"].to_numpy(), rows[measure].to_numpy()
        sel = (result.spearman["measure"] == measure) & (result.spearman["structure"] == structure)
        sp = result.spearman.loc[sel].iloc[0]
        ref = stats.spearmanr(x, y)
        assert (sp["r_s"], sp["p"]) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12)
        assert sp["p_bonferroni"] == pytest.approx(min(1.0, ref.pvalue * 3), rel=1e-12)
        z = (y - y.mean()) / y.std(ddof=1)
        ks = stats.kstest(z, "norm")
        sel_n = (result.normality["measure"] == measure) & (
            result.normality["structure"] == structure
        )
        norm = result.normality.loc[sel_n].iloc[0]
        assert (norm["ks_statistic"], norm["ks_p"]) == pytest.approx(
            (ks.statistic, ks.pvalue), rel=1e-12
        )
        groups = _quartile_groups(df, structure, measure)
        kw = stats.kruskal(*groups)
        sel_k = (result.kruskal["measure"] == measure) & (result.kruskal["structure"] == structure)
        k = result.kruskal.loc[sel_k].iloc[0]
        assert (k["h"], k["p"]) == pytest.approx((kw.statistic, kw.pvalue), rel=1e-12)
        sel_p = (result.pairwise["measure"] == measure) & (
            result.pairwise["structure"] == structure
        )
        pw = result.pairwise.loc[sel_p].reset_index(drop=True)
        assert len(pw) == 6
        for row, (a, b) in zip(pw.itertuples(), itertools.combinations(range(4), 2), strict=True):
            ref_rs = stats.ranksums(groups[a], groups[b])
            assert (row.group_a, row.group_b) == (f"Q{a + 1}", f"Q{b + 1}")
            assert row.statistic == pytest.approx(ref_rs.statistic, rel=1e-12)
            assert row.p_bonferroni == pytest.approx(min(1.0, ref_rs.pvalue * 6), rel=1e-12)
            assert row.significant == (row.p_bonferroni < 1e-4)


def test_quartiles_split_scans_evenly_and_liver_trend_is_found() -> None:
    result = analyze_frame(_frame(), min_volumes_ml={}, config=AnalysisConfig())
    assert result.quartiles["n_scans"].tolist() == [30, 30, 30, 30]
    sp = result.spearman.set_index(["measure", "structure"])
    assert sp.loc[("volume_ml", "liver"), "significant"]
    assert sp.loc[("volume_ml", "liver"), "r_s"] < -0.5
    assert not sp.loc[("volume_ml", "spleen"), "significant"]
    desc = result.descriptive
    liver = desc.loc[(desc["measure"] == "volume_ml") & (desc["structure"] == "liver")]
    assert liver["median"].is_monotonic_decreasing


def test_by_sex_adds_strata() -> None:
    result = analyze_frame(_frame(), min_volumes_ml={}, config=AnalysisConfig(by_sex=True))
    assert sorted(result.spearman["stratum"].unique()) == ["F", "M", "all"]
    counts = result.spearman.groupby("stratum")["n"].max()
    assert counts["F"] + counts["M"] == counts["all"]


def test_too_few_measurements_are_not_tested() -> None:
    df = _frame(n_scans=12)
    result = analyze_frame(df, min_volumes_ml={}, config=AnalysisConfig(min_n=20))
    assert result.spearman["p"].isna().all() and not result.spearman["significant"].any()


def test_exclusions_by_status_and_lower_bound() -> None:
    df = pd.DataFrame(
        {
            "scan_id": ["a", "b", "c", "d"],
            "structure": ["liver"] * 4,
            "status": ["ok", "incomplete", "absent", "ok"],
            "volume_ml": [1500.0, 900.0, np.nan, 120.0],
        }
    )
    kept, counts = apply_exclusions(df, {"liver": 500.0})
    assert kept["scan_id"].tolist() == ["a"]
    row = counts.iloc[0]
    assert (row.n_scans, row.n_absent, row.n_incomplete, row.n_below_min_volume, row.n_kept) == (
        4,
        1,
        1,
        1,
        1,
    )
    kept, _ = apply_exclusions(df, {"liver": 500.0}, include_incomplete=True)
    assert kept["scan_id"].tolist() == ["a", "b"]


def test_shipped_bounds_cover_every_structure_with_a_rationale() -> None:
    table = pd.read_csv(shipped_min_volumes_path())
    assert list(table.columns) == ["structure", "min_volume_ml", "rationale"]
    assert set(table["structure"]) == {s.name for s in structures()}
    assert table["rationale"].str.len().min() > 10
    bounds = load_min_volumes()
    assert bounds["liver"] == 500.0 and "kidney_cyst_left" not in bounds  # 0 = no bound


def test_override_bounds(tmp_path: Path) -> None:
    path = tmp_path / "bounds.csv"
    path.write_text("structure,min_volume_ml\nliver,800\nspleen,\n")
    bounds = load_min_volumes(path)
    assert bounds["liver"] == 800.0 and "spleen" not in bounds and bounds["pancreas"] == 15.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,bound\nliver,3\n", "columns structure,min_volume_ml"),
        ("structure,min_volume_ml\nliver,big\n", "got 'big'"),
        ("structure,min_volume_ml\nliver,-1\n", "min_volume_ml >= 0"),
    ],
)
def test_bad_override_bounds(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bounds.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_min_volumes(path)


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match="min-volume CSV"):
        load_min_volumes(tmp_path / "nope.csv")


def test_config_and_input_errors() -> None:
    with pytest.raises(ConfigError, match="0 < alpha < 1"):
        AnalysisConfig(alpha=0)
    with pytest.raises(ConfigError, match="min_n >= 4"):
        AnalysisConfig(min_n=2)
    with pytest.raises(ConfigError, match="measures from"):
        AnalysisConfig(measures=("weight",))
    with pytest.raises(InputError, match=r"without \['age'\]"):
        analyze_frame(_frame().drop(columns="age"), min_volumes_ml={})
    with pytest.raises(InputError, match="known age"):
        analyze_frame(_frame().assign(age=np.nan), min_volumes_ml={})
