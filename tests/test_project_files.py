"""What a fresh clone promises: the license, the citation, and an install that keeps the CUDA
build of torch out of CPU machines (heavy test-only dependencies installed after torch)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_the_apache_2_text_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 150
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()


def test_citation_names_totalsegmentator_and_nnunet() -> None:
    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert text.startswith("cff-version: 1.2.0")
    assert "doi: 10.1148/ryai.230024" in text and "Radiology: Artificial Intelligence" in text
    assert "doi: 10.1038/s41592-020-01008-z" in text and "Nature Methods" in text


def test_heavy_test_dependencies_are_not_in_the_user_or_dev_extras() -> None:
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    heavy = re.compile(r"^(nnunetv2|totalsegmentator|monai|timm|torchvision)\b", re.IGNORECASE)
    for name in ("dicom", "tables", "study", "all", "dev"):
        assert not [d for d in extras[name] if heavy.match(d)], name
    assert any(d.startswith("nnunetv2") for d in extras["oracle"])
    assert any(d.startswith("TotalSegmentator") for d in extras["reference"])


def test_readme_and_ci_install_torch_from_the_cpu_index_first() -> None:
    index = "https://download.pytorch.org/whl/cpu"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert readme.index(f"--index-url {index}") < readme.index('pip install "totalseg[all]"')
    assert ci.index(index) < ci.index('-e ".[dev,oracle]"') < ci.index("python -m pytest")
    assert "grep -iE '^(nvidia-|triton)'" in ci


def test_readme_starts_with_the_install_and_test_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert readme.startswith("# totalseg\n\n```bash\n")
    assert len(first_block) == 2
    install, test = first_block
    assert install.endswith('python -m pip install -e ".[dev,oracle]"')
    assert test == "python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install --quiet -e ".[dev,oracle]"' in ci
    assert ci.rstrip().endswith(test)
