"""`--backend` / `--precision` through the CLI and the API: refusals in one line, `-v` names the
kernels used, the default (auto: torch) mode, and OpenVINO against torch fp32."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import totalseg
from totalseg.cli.app import main
from totalseg.errors import ConfigError
from totalseg.inference import kernels
from totalseg.inference.kernels import CpuFeatures
from totalseg.options import SegmentOptions
from totalseg.pipeline import Segmenter

OPENVINO = importlib.util.find_spec("openvino") is not None
openvino_only = pytest.mark.skipif(not OPENVINO, reason="openvino not installed")


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    data = rng.normal(-200, 300, (16, 24, 20)).astype(np.int16)  # one tile
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 1.0, 1.2, 1.0])), path)
    return path


@pytest.fixture
def no_bf16(monkeypatch):
    cpu = CpuFeatures("Test EPYC", "x86_64", (), "AVX2")
    monkeypatch.setattr(kernels, "detect_cpu", lambda: cpu)


def _segment(scan: Path, folder: Path, tmp_path: Path, *flags: str) -> int:
    out = tmp_path / "out.nii.gz"
    return main(["segment", "-i", str(scan), "-o", str(out), "--ml", "--model-dir", str(folder),
                 "--device", "cpu", *flags])  # fmt: skip


def test_bf16_is_refused_in_one_line_without_the_instructions(
    scan, tiny_folder, tmp_path, capsys, no_bf16
):
    assert _segment(scan, tiny_folder, tmp_path, "--precision", "bf16") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bf16 instructions" in err[0] and "--precision fp32" in err[0]
    assert "Test EPYC" in err[0] and not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--precision", "fp16"], "CPUs emulate fp16"),
        (["--backend", "openvino", "--parity"], "parity mode"),
        (["--backend", "onnx"], "Expected a backend among"),
    ],
)
def test_other_refusals_through_the_cli(scan, tiny_folder, tmp_path, capsys, flags, match):
    assert _segment(scan, tiny_folder, tmp_path, *flags) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def test_verbose_names_the_backend_and_precision(scan, tiny_folder, tmp_path, capsys):
    assert _segment(scan, tiny_folder, tmp_path, "--backend", "torch", "-v") == 0
    err = capsys.readouterr().err
    assert "backend torch, precision fp32 on cpu" in err


def test_api_takes_backend_and_precision(scan, tiny_folder, no_bf16):
    segmenter = Segmenter(model_dir=tiny_folder, device="cpu", backend="torch", precision="fp32")
    kernel = segmenter.parts[0].predictor.kernels
    assert (kernel.backend, kernel.precision) == ("torch", "fp32")
    assert SegmentOptions(backend="openvino").backend == "openvino"
    with pytest.raises(ConfigError, match="parity mode"):
        SegmentOptions(parity=True, precision="bf16")
    with pytest.raises(ConfigError, match="Expected a precision among"):
        SegmentOptions(precision="half")
    with pytest.raises(ConfigError, match="bf16 instructions"):
        totalseg.segment(scan, model_dir=tiny_folder, device="cpu", precision="bf16")


def test_default_mode_runs_torch_with_the_reference_arithmetic(scan, tiny_folder, tmp_path, capsys):
    assert _segment(scan, tiny_folder, tmp_path, "-v") == 0
    assert "backend torch, precision fp32 on cpu (auto:" in capsys.readouterr().err
    got = np.asarray(nib.load(tmp_path / "out.nii.gz").dataobj)
    ref = Segmenter(model_dir=tiny_folder, device="cpu", backend="torch")(scan)
    np.testing.assert_array_equal(got, np.asarray(ref.array))


@openvino_only
def test_openvino_when_asked_keeps_the_answers(scan, tiny_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOTALSEG_HOME", str(tmp_path / "home"))  # the OpenVINO model cache
    assert _segment(scan, tiny_folder, tmp_path, "-v", "--backend", "openvino") == 0
    assert "backend openvino, precision fp32 on cpu (as requested)" in capsys.readouterr().err
    got = np.asarray(nib.load(tmp_path / "out.nii.gz").dataobj)
    ref = Segmenter(model_dir=tiny_folder, device="cpu", backend="torch")(scan)
    expected = np.asarray(ref.array)
    for label in np.union1d(np.unique(got), np.unique(expected)):
        a, b = got == label, expected == label
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.999, label
