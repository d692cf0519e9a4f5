"""Kernel back-ends and precisions: which library runs the network, in which number format.

Choices (`SegmentOptions.backend` / `.precision`, `--backend` / `--precision`):

* backend `torch`: the PyTorch network as loaded. `openvino`: the same network converted once by
  OpenVINO's PyTorch front-end and compiled for the CPU (`inference.openvino_backend`; the
  optional extra `totalseg[openvino]`). `auto` (default): torch, whose fp32 path is nnU-Net's
  own arithmetic (labels voxel-identical to the reference tool's). OpenVINO was the `auto`
  choice on x86-64 after one-tile kernel benchmarks (1.34x on a Xeon with AMX, 1.57x on an
  AMD EPYC with AVX-512, `benchmarks/kernels`), but inside the pipeline, on the 118-class
  TotalSegmentator-sized network, it measured no faster than torch (9.7 vs 9.3 s per 128^3
  tile, EPYC; bf16 23.5 vs 20.4 s for `total-fast`), cost 2.5 GB more peak memory, and with
  random-init weights (small logit margins) changed 3.6 % of the in-body voxels of a run
  (`benchmarks/runtime_table`). It stays available as `--backend openvino`.
* precision `fp32` (the CPU default: exact), `fp16` (the CUDA default: autocast, as nnU-Net
  does), `bf16` (torch: autocast; OpenVINO: precision hint bf16). bf16 on the CPU is offered
  only where the CPU has bf16 instructions (avx512_bf16 or AMX-bf16, from /proc/cpuinfo flags or
  torch's CPU checks); fp16 on the CPU is refused (no fp16 convolution kernels on common CPUs:
  emulated, slower than fp32 and less exact). OpenVINO always gets its precision hint pinned
  (it switches to bf16 by itself on AMX CPUs otherwise).
* parity mode is torch with nnU-Net's arithmetic (fp32 on the CPU, fp16 autocast on CUDA); any
  other back-end or precision is refused.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from totalseg.errors import ConfigError
from totalseg.options import BACKENDS, PRECISIONS

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "CpuFeatures",
    "Kernels",
    "TorchNetwork",
    "detect_cpu",
    "openvino_installed",
    "resolve_kernels",
]

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CpuFeatures:
    """What the CPU offers: its model name, the bf16 flags found, torch's capability level."""

    model: str
    machine: str
    bf16_flags: tuple[str, ...]
    torch_capability: str

    @property
    def has_bf16(self) -> bool:
        return bool(self.bf16_flags)

    def describe(self) -> str:
        flags = ", ".join(self.bf16_flags) or f"none of {', '.join(_BF16_FLAGS)}"
        return f"{self.model} ({self.machine}, bf16 flags: {flags}, torch {self.torch_capability})"


@functools.lru_cache(maxsize=1)
def detect_cpu() -> CpuFeatures:
    """The CPU's bf16 support from /proc/cpuinfo flags (Linux) and torch's own checks."""
    model, flags = _cpuinfo(Path("/proc/cpuinfo"))
    found = [f for f in _BF16_FLAGS if f in flags]
    cpu = getattr(torch, "cpu", None)
    if "avx512_bf16" not in found and _torch_check(cpu, "_is_avx512_bf16_supported"):
        found.append("avx512_bf16")
    if "amx_bf16" not in found and _torch_check(cpu, "_is_amx_tile_supported"):
        found.append("amx_bf16")
    capability = str(torch.backends.cpu.get_cpu_capability())
    return CpuFeatures(model or platform.processor() or "unknown CPU", platform.machine(),
                       tuple(found), capability)  # fmt: skip


def _cpuinfo(path: Path) -> tuple[str, set[str]]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "", set()
    model, flags = "", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def _torch_check(module: Any, name: str) -> bool:
    check = getattr(module, name, None)
    return bool(check()) if callable(check) else False


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


@dataclass(frozen=True)
class Kernels:
    """The resolved choice: back-end, precision, device, and why (for logs and `-v`)."""

    backend: str
    precision: str
    device: torch.device
    reason: str

    def describe(self) -> str:
        what = f"backend {self.backend}, precision {self.precision} on {self.device}"
        return f"{what} ({self.reason})"


def resolve_kernels(
    backend: str, precision: str | None, device: torch.device, *, parity: bool
) -> Kernels:
    """Check a back-end/precision request against the device and CPU; pick `auto`'s back-end."""
    if backend not in BACKENDS:
        raise ConfigError(f"Expected a backend among {', '.join(BACKENDS)}, got {backend!r}.")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"Expected a precision among {', '.join(PRECISIONS)}, got {precision!r}.")
    default = "fp16" if device.type == "cuda" else "fp32"
    chosen = precision or default
    if parity and (backend == "openvino" or chosen != default):
        raise ConfigError(
            f"Expected torch with nnU-Net's arithmetic ({default} on {device.type}) in parity "
            f"mode, got backend {backend} and precision {chosen}; drop --parity or them."
        )
    if backend == "openvino" and device.type != "cpu":
        raise ConfigError(
            f"Expected the CPU for the OpenVINO back-end, got device {device}; use --device cpu "
            "or --backend torch."
        )
    _check_precision(chosen, device)
    if backend == "openvino" and not openvino_installed():
        raise ConfigError(
            "Expected the openvino package for --backend openvino, got none installed; "
            "pip install 'totalseg[openvino]' or use --backend torch."
        )
    if backend != "auto":
        return Kernels(backend, chosen, device, "as requested")
    return Kernels("torch", chosen, device, "auto: torch (OpenVINO measured no faster here)")


def _check_precision(precision: str, device: torch.device) -> None:
    if device.type == "cpu" and precision == "fp16":
        raise ConfigError(
            "Expected --precision fp32 or bf16 on the CPU, got fp16: CPUs emulate fp16 "
            "convolutions (slower than fp32, less exact); use fp32 (exact) or a GPU."
        )
    if device.type == "cpu" and precision == "bf16" and not detect_cpu().has_bf16:
        raise ConfigError(
            f"Expected a CPU with bf16 instructions for --precision bf16, found "
            f"{detect_cpu().describe()}; use --precision fp32."
        )
    if device.type == "mps" and precision != "fp32":
        raise ConfigError(f"Expected --precision fp32 on Apple MPS, got {precision}.")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"Expected a GPU with bf16 support for --precision bf16, got {device} without it; "
            "use --precision fp16 (the default)."
        )


class TorchNetwork:
    """A torch network run under the autocast a precision asks for (the sliding window's own
    CUDA fp16 autocast is overridden for fp32/bf16 there); bf16 logits come back as fp32."""

    def __init__(self, network: Callable[[torch.Tensor], Any], kernels: Kernels) -> None:
        self.network = network
        self.device_type = kernels.device.type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(kernels.precision)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return torch.autocast(self.device_type, enabled=False)
        return torch.autocast(self.device_type, dtype=self.dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            out = self.network(x)
        return out.float() if out.dtype == torch.bfloat16 else out


def wrap_torch(network: Callable[[torch.Tensor], Any], kernels: Kernels) -> Any:
    """The network itself where the sliding window's arithmetic is already right (fp32 on the
    CPU/MPS, fp16 autocast on CUDA), else a `TorchNetwork`."""
    default = "fp16" if kernels.device.type == "cuda" else "fp32"
    return network if kernels.precision == default else TorchNetwork(network, kernels)
