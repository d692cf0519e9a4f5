"""Kernel back-ends and precisions: the rules (refusals, `auto`), CPU detection, and every
back-end/precision against torch fp32 on tiny random-weight models and the shipped demo model."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from totalseg.errors import ConfigError
from totalseg.inference import kernels
from totalseg.inference.kernels import CpuFeatures, resolve_kernels
from totalseg.inference.predictor import InferenceOptions, Predictor
from totalseg.models.folder import load_model_folder

CPU = torch.device("cpu")
WITH_BF16 = CpuFeatures("Test Xeon", "x86_64", ("avx512_bf16", "amx_bf16"), "AVX512")
WITHOUT_BF16 = CpuFeatures("Test EPYC", "x86_64", (), "AVX2")

OPENVINO = importlib.util.find_spec("openvino") is not None
openvino_only = pytest.mark.skipif(
    not OPENVINO, reason="openvino not installed (extra totalseg[openvino])"
)


@pytest.fixture
def cpu_with_bf16(monkeypatch):
    monkeypatch.setattr(kernels, "detect_cpu", lambda: WITH_BF16)


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(kernels, "detect_cpu", lambda: WITHOUT_BF16)


def per_class_dice(a: np.ndarray, b: np.ndarray) -> dict[int, float]:
    out = {}
    for label in np.union1d(np.unique(a), np.unique(b)):
        x, y = a == label, b == label
        out[int(label)] = 2 * float((x & y).sum()) / float(x.sum() + y.sum())
    return out


def _case(shape=(18, 28, 22), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, size=(1, *shape)).astype(np.float32)


def _logits(folder: Path, tmp_path: Path | None = None, *, folds=None, **options) -> torch.Tensor:
    """Logits of a (1, 18, 28, 22) case (8 tiles of the tiny model's 16x24x20), no mirroring."""
    model = load_model_folder(folder, folds=folds)
    cache = None if tmp_path is None else tmp_path / "ov-cache"
    opts = InferenceOptions(device="cpu", cache_dir=cache, mirroring=False, **options)
    predictor = Predictor(model, opts)
    return predictor.predict_logits(_case()).float()


# -- rules --------------------------------------------------------------------------------------


def test_cpuinfo_flags_are_read(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n\n"
        "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n"
    )
    model, flags = kernels._cpuinfo(info)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx512_bf16", "amx_bf16", "avx2"} <= flags and "fpu" in flags
    assert kernels._cpuinfo(tmp_path / "missing") == ("", set())


def test_defaults_are_fp32_on_the_cpu_and_fp16_on_cuda(cpu_without_bf16):
    assert resolve_kernels("torch", None, CPU, parity=False).precision == "fp32"
    cuda = resolve_kernels("torch", None, torch.device("cuda", 0), parity=False)
    assert (cuda.backend, cuda.precision) == ("torch", "fp16")
    assert resolve_kernels("auto", None, torch.device("cuda", 0), parity=True).backend == "torch"


@pytest.mark.parametrize(
    ("backend", "precision", "device", "parity", "match"),
    [
        ("torch", "bf16", "cpu", False, r"bf16 instructions .*Test EPYC .*fp32"),
        ("openvino", "bf16", "cpu", False, "bf16 instructions"),
        ("torch", "fp16", "cpu", False, "CPUs emulate fp16 convolutions"),
        ("openvino", None, "cuda", False, "Expected the CPU for the OpenVINO back-end"),
        ("openvino", None, "cpu", True, "in parity mode"),
        ("torch", "bf16", "cpu", True, "in parity mode"),
        ("torch", "fp32", "cuda", True, "in parity mode"),
        ("tensorrt", None, "cpu", False, "Expected a backend among auto, torch, openvino"),
        ("torch", "int8", "cpu", False, "Expected a precision among fp32, bf16, fp16"),
    ],
)  # fmt: skip
def test_refusals(cpu_without_bf16, backend, precision, device, parity, match):
    with pytest.raises(ConfigError, match=match):
        resolve_kernels(backend, precision, torch.device(device), parity=parity)


def test_bf16_is_offered_where_the_cpu_has_it(cpu_with_bf16):
    chosen = resolve_kernels("torch", "bf16", CPU, parity=False)
    assert (chosen.backend, chosen.precision) == ("torch", "bf16")
    assert resolve_kernels("auto", "bf16", CPU, parity=False).backend == "torch"


def test_auto_rule(monkeypatch, cpu_with_bf16):
    monkeypatch.setattr(kernels, "openvino_installed", lambda: True)
    for precision, parity in ((None, False), ("fp32", True), ("bf16", False)):
        chosen = resolve_kernels("auto", precision, CPU, parity=parity)
        assert chosen.backend == "torch" and chosen.reason.startswith("auto:")
    assert resolve_kernels("openvino", None, CPU, parity=False).backend == "openvino"
    monkeypatch.setattr(kernels, "openvino_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'totalseg\[openvino\]'"):
        resolve_kernels("openvino", None, CPU, parity=False)


def test_inference_options_refuse_before_loading(cpu_without_bf16):
    with pytest.raises(ConfigError, match="bf16 instructions"):
        InferenceOptions(device="cpu", precision="bf16")


# -- results against torch fp32 -----------------------------------------------------------------


@openvino_only
def test_openvino_f32_matches_torch_fp32_and_is_cached(tiny_folder, tmp_path, monkeypatch):
    from totalseg.inference import openvino_backend

    reference = _logits(tiny_folder, backend="torch")
    got = _logits(tiny_folder, tmp_path, backend="openvino")
    assert got.shape == reference.shape
    assert float((got - reference).abs().max()) < 1e-2  # fp16 accumulators: ~1e-3 apart
    dice = per_class_dice(got.argmax(0).numpy(), reference.argmax(0).numpy())
    assert min(dice.values()) >= 0.999, dice
    assert len(list((tmp_path / "ov-cache").iterdir())) == 2  # one per fold

    def refuse(*args, **kwargs):
        raise AssertionError("converted again despite the cache")

    monkeypatch.setattr(openvino_backend, "_convert", refuse)
    again = _logits(tiny_folder, tmp_path, backend="openvino")
    assert torch.equal(again, got)


@openvino_only
def test_openvino_pins_the_precision_hint_and_threads(tiny_folder, cpu_with_bf16):
    from totalseg.inference.openvino_backend import OpenVinoNetwork

    model = load_model_folder(tiny_folder, folds=(0,))
    for precision, hint in (("fp32", "f32"), ("bf16", "bf16")):
        chosen = resolve_kernels("openvino", precision, CPU, parity=False)
        net = OpenVinoNetwork(
            model.networks[0], chosen, n_in=1, patch_size=model.plan.patch_size, n_threads=1
        )
        assert net.compiled.get_property("INFERENCE_NUM_THREADS") == 1
        # OpenVINO keeps f32 where the CPU lacks bf16 kernels, whatever the hint says
        assert net.precision in (hint, "f32")


_SIGNAL_AFTER_TWO_MODELS = """
import os, signal, torch
from totalseg.inference.kernels import Kernels
from totalseg.inference.openvino_backend import OpenVinoNetwork
net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1))
kernels = Kernels("openvino", "fp32", torch.device("cpu"), "test")
a = OpenVinoNetwork(net, kernels, n_in=1, patch_size=(8, 8, 8), n_threads=1)
b = OpenVinoNetwork(net, kernels, n_in=1, patch_size=(8, 8, 8), n_threads=1)
del a  # freed before b: OpenVINO alone would leave the thread on a's unmapped signal stack
del b
signal.signal(signal.SIGINT, lambda *_: print("handled"))
os.kill(os.getpid(), signal.SIGINT)
"""


@openvino_only
def test_a_signal_after_freeing_compiled_models_is_handled():
    """Ctrl-C after two compiled models were freed out of order stops cleanly, no segfault."""
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AFTER_TWO_MODELS],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "handled"


def test_torch_bf16_autocast_runs_where_offered(tiny_folder, cpu_with_bf16):
    """bf16 is emulated (slowly) on CPUs without it, so the path runs here too, on one fold."""
    reference = _logits(tiny_folder, backend="torch", folds=(0,))
    got = _logits(tiny_folder, backend="torch", precision="bf16", folds=(0,))
    assert got.dtype == torch.float32 and got.shape == reference.shape
    assert float((got - reference).abs().max()) > 0  # bf16 really ran
    agreement = float((got.argmax(0) == reference.argmax(0)).float().mean())
    assert agreement > 0.9


@openvino_only
@pytest.mark.slow
def test_openvino_f32_matches_torch_on_the_demo_model(tmp_path):
    """The trained demo model (real logit margins) on a small phantom, by the issue's measure:
    voxels >= 99.95 % equal, per-class Dice >= 0.999 (classes of >= 200 voxels: below that one
    voxel moves the Dice by more than 0.001)."""
    from totalseg.phantom import generate_subject, sample_subject_params
    from totalseg.pipeline import Segmenter

    phantom = generate_subject(sample_subject_params(0, fov="abdomen", spacing_mm=6.0))
    labels = {}
    for backend in ("torch", "openvino"):
        segmenter = Segmenter("demo", device="cpu", backend=backend, home=tmp_path)
        labels[backend] = np.asarray(segmenter(phantom.image).array)
    assert float((labels["openvino"] == labels["torch"]).mean()) >= 0.9995
    sizes = dict(zip(*np.unique(labels["torch"], return_counts=True), strict=True))
    dice = per_class_dice(labels["openvino"], labels["torch"])
    large = {k: d for k, d in dice.items() if sizes.get(k, 0) >= 200}
    assert len(large) > 5 and min(large.values()) >= 0.999, dice
