from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from totalseg.cli.app import main


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: ") and "\n" not in err
    return err


def test_list_empty_and_json(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "No official weights in" in out and "shipped" in out
    assert main(["weights", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["weights_dir"] == str(home / "weights")
    (demo,) = doc["models"]  # the shipped demo model is always there
    assert (demo["dataset_id"], demo["source"], demo["folds"]) == (9000, "shipped", ["fold_0"])


def test_import_and_list(
    home: Path, tmp_path: Path, tiny_kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from totalseg.models.writer import random_model_folder

    folder = random_model_folder(
        tmp_path / "src" / "Dataset990_Cli" / "nnUNetTrainer__p__c", **tiny_kwargs
    )
    archive = tmp_path / "w.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.parent.parent.rglob("*")):
            zf.write(p, p.relative_to(folder.parent.parent).as_posix())
    assert main(["weights", "import", str(archive)]) == 0
    assert "installed" in capsys.readouterr().out
    assert main(["weights", "list", "--json"]) == 0
    (row,) = [m for m in json.loads(capsys.readouterr().out)["models"] if m["source"] != "shipped"]
    assert (row["dataset_id"], row["model"], row["folds"]) == (
        990,
        "nnUNetTrainer__p__c",
        ["fold_0"],
    )
    assert main(["weights", "list"]) == 0
    assert "Dataset990_Cli" in capsys.readouterr().out
    assert main(["weights", "import", str(archive)]) == 1
    assert "already installed; pass --force" in _one_line_error(capsys)
    assert main(["weights", "import", str(archive), "--force"]) == 0


def test_cli_errors(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "download", "total"]) == 1  # tests run with TOTALSEG_OFFLINE=1
    assert "TOTALSEG_OFFLINE is set" in _one_line_error(capsys)
    assert main(["weights", "download", "totl"]) == 1
    assert "Did you mean 'total'" in _one_line_error(capsys)
    assert main(["weights", "download", "total", "--sha256", "a" * 64]) == 1
    assert "Expected --sha256 ID=HEX (or --hashes FILE) for 5 archives" in _one_line_error(capsys)
    assert main(["weights", "download", "total", "--sha256", "297=" + "a" * 64]) == 1
    assert "Expected --sha256 for one of 291, 292" in _one_line_error(capsys)
    assert main(["weights", "import", str(tmp_path / "none.zip")]) == 1
    assert "Expected a weights zip or folder" in _one_line_error(capsys)
