"""Real signals on a running `totalseg segment` (a subprocess): SIGINT and SIGTERM end it with
one line and exit 130, keeping the finished cases and leaving nothing partial; SIGKILL leaves
at most a hidden temp folder, which the next run cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.reliability.corpus import TINY_ARCH, ct_array, save_nifti

N_CLASSES = 80
_WAIT_S = 300.0


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory) -> Path:
    """A tiny model with many classes, so that writing the masks takes a while."""
    from totalseg.models.writer import random_model_folder

    return random_model_folder(
        tmp_path_factory.mktemp("model80") / "m", n_classes=N_CLASSES, patch_size=(16, 16, 16),
        spacing_mm=1.5, **TINY_ARCH,
    )  # fmt: skip


def _inputs(tmp_path: Path, second_shape: tuple[int, int, int]) -> list[Path]:
    """A small first case (finishes quickly) and a larger second one."""
    return [
        save_nifti(tmp_path / "a.nii.gz", ct_array((24, 20, 18))),
        save_nifti(tmp_path / "b.nii.gz", ct_array(second_shape, seed=1)),
    ]


@pytest.fixture
def inputs(tmp_path) -> list[Path]:
    """The second case writes 80 masks: long enough to be caught while writing."""
    return _inputs(tmp_path, (40, 40, 24))


def _start(model: Path, inputs: list[Path], out: Path) -> subprocess.Popen[str]:
    code = "import sys; from totalseg.cli import main; sys.exit(main())"
    args = ["segment", "-i", *map(str, inputs), "-o", str(out), "--model-dir", str(model),
            "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip


def _wait_for(proc: subprocess.Popen[str], ready, what: str) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"segment ended (rc {proc.returncode}) before {what}: {out} {err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def _first_case_written(proc: subprocess.Popen[str], out: Path):
    def ready() -> bool:
        return (out / "a" / "class_1.nii.gz").exists()

    return ready


def _writing(out: Path):
    def ready() -> bool:
        return out.is_dir() and any(p.name.startswith(".b.tmp-") for p in out.iterdir())

    return ready


def _hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def _check_interrupted(proc: subprocess.Popen[str], out: Path) -> None:
    stdout, stderr = proc.communicate(timeout=_WAIT_S)
    assert proc.returncode == 130, (stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == ["Interrupted: 1 of 2 outputs finished, nothing partial left."], stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["a"]  # no 'b', no temp entries
    assert len(list((out / "a").iterdir())) == N_CLASSES


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_prediction(sig, many_classes, tmp_path):
    out = tmp_path / "out"
    proc = _start(many_classes, _inputs(tmp_path, (64, 64, 40)), out)  # seconds to predict
    _wait_for(proc, _first_case_written(proc, out), "the first case was written")
    time.sleep(0.2)  # the second case is being read and predicted
    assert not (out / "b").exists()
    proc.send_signal(sig)
    _check_interrupted(proc, out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_writing(sig, many_classes, inputs, tmp_path):
    out = tmp_path / "out"
    proc = _start(many_classes, inputs, out)
    _wait_for(proc, _writing(out), "the second case's masks were being written")
    proc.send_signal(sig)
    _check_interrupted(proc, out)


def test_sigkill_during_writing_leaves_only_a_hidden_temp_folder(
    many_classes, inputs, tmp_path, cli
):
    out = tmp_path / "out"
    proc = _start(many_classes, inputs, out)
    _wait_for(proc, _writing(out), "the second case's masks were being written")
    proc.kill()
    proc.communicate(timeout=_WAIT_S)
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert visible == ["a"] and len(list((out / "a").iterdir())) == N_CLASSES
    assert all(name.startswith(".b.tmp-") for name in _hidden(out))
    again = cli("segment", "-i", inputs[1], "-o", out / "b", "--model-dir", many_classes,
                "--device", "cpu")  # fmt: skip
    assert again.rc == 0, again
    assert _hidden(out) == [] and len(list((out / "b").iterdir())) == N_CLASSES
