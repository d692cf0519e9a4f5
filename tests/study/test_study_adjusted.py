"""Covariate-adjusted age effects: partial Spearman, robust linear model, Bonferroni and FDR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from totalseg.cli.app import main
from totalseg.errors import ConfigError, InputError
from totalseg.study import AnalysisConfig, analyze_frame, load_study_table
from totalseg.study.adjusted import add_corrections, adjusted_family

statsmodels = pytest.importorskip("statsmodels")


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """'liver' depends on height only (height falls with age), 'kidney_left' on age directly."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 90, n)
    sex = rng.choice(["F", "M"], n)
    height = np.where(sex == "M", 177.0, 164.0) - 3.0 * (age - 50) / 10 + rng.normal(0, 6, n)
    rows = []
    for i in range(n):
        liver = 1500 * (height[i] / 175) ** 2.6 * rng.lognormal(0, 0.08)
        kidney = 150 * 0.95 ** ((age[i] - 50) / 10) * rng.lognormal(0, 0.08)
        for name, volume in (("liver", liver), ("kidney_left", kidney)):
            rows.append((f"s{i}", age[i], sex[i], height[i], name, "ok", volume, 40 + rng.normal()))
    columns = ["scan_id", "age", "sex", "height_cm", "structure", "status", "volume_ml", "mean_hu"]
    return pd.DataFrame(rows, columns=columns)


def _run(frame: pd.DataFrame, **options: object) -> pd.DataFrame:
    config = AnalysisConfig(adjust=("sex", "height_cm"), measures=("volume_ml",), **options)
    result = analyze_frame(frame, min_volumes_ml={}, config=config)
    assert result.adjusted is not None
    return result.adjusted.set_index(["stratum", "structure"])


def test_adjustment_removes_a_confounded_effect_and_keeps_a_direct_one() -> None:
    adj = _run(_frame())
    liver, kidney = adj.loc[("all", "liver")], adj.loc[("all", "kidney_left")]
    assert liver["significant_unadjusted"] and liver["r_s"] < -0.3  # confounded by height
    assert not liver["significant"] and not liver["rlm_significant"]
    assert abs(liver["effect_per_decade"]) < 0.01
    assert kidney["significant"] and kidney["rlm_significant"] and kidney["r_s_partial"] < 0
    assert kidney["ci_low"] < -0.05 < kidney["ci_high"]
    assert kidney["effect_unit"] == "relative" and kidney["adjusted_for"] == "sex,height_cm"


def test_without_covariates_the_partial_correlation_is_spearman() -> None:
    frame = _frame(120)
    sub = frame.assign(none=1.0)
    adj = adjusted_family(sub, "volume_ml", ["none"], min_n=20).set_index("structure")
    for name, g in frame.groupby("structure"):
        ref = stats.spearmanr(g["age"], g["volume_ml"])
        assert adj.loc[name, "r_s_partial"] == pytest.approx(ref.statistic, rel=1e-9)
        assert adj.loc[name, "p"] == pytest.approx(ref.pvalue, rel=1e-6)
        assert adj.loc[name, "adjusted_for"] == ""  # a constant covariate is left out


def test_a_covariate_constant_in_a_stratum_is_left_out_there() -> None:
    adj = _run(_frame(), by_sex=True)
    assert adj.loc[("F", "liver"), "adjusted_for"] == "height_cm"
    assert adj.loc[("all", "liver"), "adjusted_for"] == "sex,height_cm"


def test_fdr_and_bonferroni_match_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    p = np.array([1e-6, 0.004, 0.01, 0.03, np.nan, 0.2, 0.5])
    df = add_corrections(pd.DataFrame({"p": p}), alpha=0.01, fdr_q=0.05)
    ok = ~np.isnan(p)
    ref_bh = multipletests(p[ok], method="fdr_bh")[1]
    ref_bonf = multipletests(p[ok], method="bonferroni")[1]
    assert df["p_fdr"].to_numpy()[ok] == pytest.approx(ref_bh)
    assert df["p_bonferroni"].to_numpy()[ok] == pytest.approx(ref_bonf)
    assert df["significant_fdr"].tolist() == [True, True, True, True, False, False, False]
    assert df["significant"].tolist() == [True, False, False, False, False, False, False]


def test_univariate_tables_carry_fdr_beside_bonferroni() -> None:
    result = analyze_frame(_frame(100), min_volumes_ml={})
    sp = result.spearman
    assert {"p_bonferroni", "significant", "p_fdr", "significant_fdr"} <= set(sp.columns)
    assert (sp["p_fdr"] <= sp["p_bonferroni"] + 1e-15).all()
    assert result.adjusted is None and "adjusted" not in result.tables()


def test_covariate_errors() -> None:
    frame = _frame(40)
    with pytest.raises(InputError, match="did you mean 'height_cm'"):
        analyze_frame(frame, min_volumes_ml={}, config=AnalysisConfig(adjust=("height",)))
    with pytest.raises(ConfigError, match="other than the measures"):
        analyze_frame(frame, min_volumes_ml={}, config=AnalysisConfig(adjust=("age",)))
    with pytest.raises(ConfigError, match="0 < fdr_q < 1"):
        AnalysisConfig(fdr_q=2.0)


def test_cli_adjust_writes_the_table_and_reports_errors(tmp_path: Path, capsys) -> None:
    _frame(120).to_parquet(tmp_path / "t.parquet")
    out = tmp_path / "r"
    argv = ["study", "analyze", str(tmp_path / "t.parquet"), "--out", str(out)]
    assert main([*argv, "--adjust", "sex,height_cm", "--max-figures", "0", "--json"]) == 0
    doc = __import__("json").loads(capsys.readouterr().out)
    assert doc["significant_adjusted"]["all/volume_ml"] == 1
    table = pd.read_csv(out / "adjusted.csv")
    assert {"rlm_p_fdr", "p_fdr", "ci_low", "ci_high", "r_s"} <= set(table.columns)
    assert "Adjusted age effects" in (out / "report.html").read_text()
    assert main([*argv, "--adjust", "sex", "--fdr-q", "1e-300", "--max-figures", "0"]) == 0
    assert not pd.read_csv(out / "adjusted.csv")["significant_fdr"].any()
    assert main([*argv, "--adjust", "weight"]) == 1
    assert "Expected --adjust covariates" in capsys.readouterr().err
    assert load_study_table(tmp_path / "t.parquet")["height_cm"].notna().all()
