"""CLI: totalseg train / plan / dataset convert, and their error paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from totalseg.cli.app import main


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_cli_import_does_not_import_torch() -> None:
    code = "import sys, totalseg.cli.train, totalseg.cli.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_train_command_end_to_end_and_resume(public_dataset: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    args = [
        "train",
        str(public_dataset),
        "--out",
        str(run),
        "--spacing-mm",
        "1.5",
        "--epochs",
        "2",
        "--iters-per-epoch",
        "2",
        "--patch-size",
        "16",
        "--base-features",
        "4",
        "--max-features",
        "16",
        "--val-patches",
        "2",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Trained 2 epochs" in out and "Model folder" in out
    assert (run / "model" / "fold_0" / "checkpoint_final.pth").is_file()
    assert json.loads((run / "training_config.json").read_text())["epochs"] == 2
    # resume with more epochs continues the stored run
    resume = [*args[:4], "--epochs", "3", "--resume", "--cache-dir", str(tmp_path / "cache")]
    assert main(resume) == 0
    assert "Trained 3 epochs" in capsys.readouterr().out
    # a second plain run into the same folder is refused
    assert main(args) == 1
    assert "pass --resume" in capsys.readouterr().err
    # a warm start from the exported model folder; a wider network is refused in one line
    warm = [*args[:3], str(tmp_path / "warm"), *args[4:], "--init-from", str(run / "model")]
    assert main(warm) == 0
    assert "Trained 2 epochs" in capsys.readouterr().out
    wider = [a if a != "4" else "8" for a in warm]
    wider[3] = str(tmp_path / "wider")
    assert main(wider) == 1
    err = capsys.readouterr().err
    assert "Expected a checkpoint of this plan's network" in err and "Traceback" not in err


def test_plan_and_convert_commands(public_dataset: Path, tmp_path: Path, capsys) -> None:
    rc = main(
        [
            "plan",
            str(public_dataset),
            "--out",
            str(tmp_path / "plan"),
            "--classes",
            "liver,spleen",
            "--spacing-mm",
            "3",
            "--memory-budget-gb",
            "1",
            "--json",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == 2 and summary["spacing_mm_zyx"] == [3.0, 3.0, 3.0]
    assert (tmp_path / "plan" / "plans.json").is_file()
    rc = main(
        [
            "dataset",
            "convert",
            str(public_dataset),
            str(tmp_path / "nn"),
            "--to",
            "nnunet",
            "--classes",
            "liver",
        ]
    )
    assert rc == 0 and "Converted 4 cases" in capsys.readouterr().out
    labels = json.loads((tmp_path / "nn" / "dataset.json").read_text())["labels"]
    assert labels == {"background": 0, "liver": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "{empty}", "--out", "{tmp}/r"], "Expected case folders"),
        (["train", "{data}", "--out", "{tmp}/r", "--classes", "livr"], "Did you mean 'liver'"),
        (["train", "{data}", "--out", "{tmp}/r", "--optimizer", "adam"], "use sgd or adamw"),
        (["train", "{data}", "--out", "{tmp}/r", "--precision", "fp8"], "use auto, off or bf16"),
        (["plan", "{data}", "--spacing-mm", "1,2"], "one or three numbers"),
        (["plan", "{data}", "--patch-size", "16.5"], "positive integers"),
        (["plan", "{data}", "--for", "tpu"], "Expected --for cpu or cuda"),
        (["dataset", "convert", "{data}", "{tmp}/x", "--to", "zip"], "Expected --to nnunet"),
    ],
)
def test_cli_errors(args, message, public_dataset: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    subs = {"{empty}": str(tmp_path / "empty"), "{data}": str(public_dataset)}
    argv = [subs.get(a, a.replace("{tmp}", str(tmp_path))) for a in args]
    assert main([*argv, "--cache-dir", str(tmp_path / "c")] if args[0] != "dataset" else argv) == 1
    assert message in capsys.readouterr().err


def test_demo_command_with_a_given_model(public_dataset: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    rc = main(["train", str(public_dataset), "--out", str(run), "--spacing-mm", "6",
               "--epochs", "1", "--iters-per-epoch", "1", "--patch-size", "32",
               "--base-features", "4", "--max-features", "8", "--val-patches", "1",
               "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"])  # fmt: skip
    assert rc == 0
    capsys.readouterr()
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--model-dir", str(run / "model"), "--fov", "abdomen",
               "--spacing-mm", "6", "--device", "cpu", "--seed", "5"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "Mean Dice over 3 structures present" in text
    dice = json.loads((out / "dice.json").read_text())
    assert set(dice) == {"spleen", "kidney_left", "liver"}
    assert all(0.0 <= v <= 1.0 for v in dice.values())
    for name in ("ct.nii.gz", "ground_truth.nii.gz", "segmentations/liver.nii.gz"):
        assert (out / name).is_file()


def test_demo_without_a_shipped_model(tmp_path: Path, monkeypatch, capsys) -> None:
    import importlib.resources

    from totalseg.models.tasks import get_task, weights_entry

    weights_entry(get_task("demo").datasets[0])  # read the registry before the data "vanishes"
    monkeypatch.setattr(importlib.resources, "files", lambda package: tmp_path)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 1
    assert "Expected the model shipped with totalseg" in capsys.readouterr().err
