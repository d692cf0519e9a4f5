"""Device selection and thread settings for inference (the only place that picks hardware)."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

import torch

from totalseg.errors import ConfigError

__all__ = ["DEVICE_CHOICES", "resolve_device", "torch_threads"]

log = logging.getLogger(__name__)

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, gpu, gpu:N, mps"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """A torch device for `auto`, `cpu`, `cuda`, `cuda:N` (`gpu`, `gpu:N` too) or `mps`.

    `auto` picks CUDA, then MPS, then the CPU. An explicit device that is not available is an
    error (no silent fallback to a 100x slower device).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = spec.strip().lower().replace("gpu", "cuda")
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise ConfigError(
                "Expected an available Apple MPS device, got none on this machine; use "
                "--device cpu or auto."
            )
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ConfigError(f"Expected a device among {DEVICE_CHOICES}, got {spec!r}.")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index >= count:
        raise ConfigError(
            f"Expected an available CUDA device, got {spec!r} with {count} CUDA device(s) "
            "visible; use --device cpu, or check the driver and CUDA_VISIBLE_DEVICES."
        )
    return torch.device("cuda", index)


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for a block and restore it afterwards (None: unchanged)."""
    if n_threads is None:
        yield
        return
    if n_threads < 1:
        raise ConfigError(f"Expected at least 1 thread, got {n_threads}.")
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
