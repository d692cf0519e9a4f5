"""The analysis outputs: CSV tables, figures, a self-contained HTML report (and a browser)."""

from __future__ import annotations

import base64
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from totalseg.errors import InputError
from totalseg.study import AnalysisConfig, analyze_study, load_study_table


def _table(tmp_path: Path, n_scans: int = 80) -> Path:
    rng = np.random.default_rng(5)
    age = rng.uniform(20, 90, n_scans)
    rows = []
    for i in range(n_scans):
        for name, base, slope in (("kidney_left", 160.0, -1.2), ("liver", 1600.0, 0.0)):
            rows.append(
                {
                    "scan_id": f"s{i:03d}",
                    "age": age[i],
                    "sex": "F" if i % 2 else "M",
                    "structure": name,
                    "status": "ok" if i % 17 else "incomplete",
                    "volume_ml": base + slope * (age[i] - 50) + rng.normal(0, 8),
                    "mean_hu": 30 + rng.normal(0, 8),
                }
            )
    path = tmp_path / "table.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("study_report")
    out = tmp_path / "report"
    analyze_study(_table(tmp_path), out, config=AnalysisConfig(by_sex=True), max_figures=2)
    return out


def test_outputs_are_written(report: Path) -> None:
    names = {p.name for p in report.iterdir()}
    assert {"spearman.csv", "kruskal.csv", "pairwise.csv", "normality.csv"} <= names
    assert {"exclusions.csv", "quartiles.csv", "descriptive.csv", "report.html"} <= names
    figures = sorted(p.name for p in (report / "figures").iterdir())
    assert "volume_ml_kidney_left.png" in figures and "overview_mean_hu.png" in figures
    spearman = pd.read_csv(report / "spearman.csv")
    assert set(spearman["stratum"]) == {"all", "F", "M"}
    row = spearman.loc[(spearman["stratum"] == "all") & (spearman["measure"] == "volume_ml")]
    kidney = row.set_index("structure").loc["kidney_left"]
    assert kidney["r_s"] < -0.5 and bool(kidney["significant"])
    exclusions = pd.read_csv(report / "exclusions.csv").set_index("structure")
    assert exclusions.loc["liver", "n_incomplete"] == 5  # scans 0, 17, 34, 51, 68


def test_html_is_self_contained(report: Path) -> None:
    text = (report / "report.html").read_text()
    parser = _Resources()
    parser.feed(text)
    assert "img" in parser.tags and "script" not in parser.tags and "link" not in parser.tags
    # images inline; the only links are relative ones into `totalseg view` (hidden in the file)
    assert parser.urls and all(u.startswith(("data:image/png;base64,", "../")) for u in parser.urls)
    assert "class='viewer-link' href='../#flag=liver'" in text
    first_image = next(u for u in parser.urls if u.startswith("data:"))
    png = base64.b64decode(first_image.split(",", 1)[1])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "http://" not in text and "https://" not in text


def test_unreadable_sources_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Expected a study folder"):
        load_study_table(tmp_path / "nothing.txt")
    with pytest.raises(InputError, match="Expected a study database"):
        load_study_table(tmp_path)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium installed")
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    cmd = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        (report / "report.html").resolve().as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=180, check=True)
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 0.05  # not blank
    ink = (pixels.mean(axis=2) < 0.5).mean()
    assert 0.005 < ink < 0.5  # text and figures drawn, not a dark error page
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50  # figures (anti-aliased plots), not just a text page
