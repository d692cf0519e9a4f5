"""The OpenVINO back-end: a PyTorch network converted once, compiled for the CPU, called like it.

Conversion uses OpenVINO's PyTorch front-end directly (a TorchScript trace of the network, the
same path `openvino.convert_model` takes) rather than `openvino.convert_model` itself, because
that entry point sends usage telemetry by default, and totalseg sends none, ever. The trace runs
on a small example input (twice the network's total stride per axis: the U-Net is shape-agnostic)
and the model is then fixed to one tile, (1, C, *patch); a forward pass at the full patch size
would cost as much as a tile.

Converting a TotalSegmentator-sized network takes 20-40 s on a 2-core machine, reading the
converted model back 0.1 s and compiling it 0.5 s (measured, see benchmarks/kernels/README.md),
so the converted model (IR, f32 weights) is cached under `<home>/cache/openvino/<key>/`, keyed by
a hash of the weights, the architecture, the input shape and the OpenVINO version. The compiled
form is not cached: OpenVINO's own compile cache (CACHE_DIR) measured no faster than compiling
(1.2 s vs 0.5 s) and the precision is only a compile-time hint, so one cached IR serves fp32 and
bf16. A cache that cannot be written is skipped with a warning.

Compiling a model makes OpenVINO (2026.4) install its own alternate signal stack on the calling
thread and put back the one it found when the compiled model is freed. Freed out of order (A and
B compiled, A freed, then B), the thread is left on A's unmapped stack and the next signal with a
Python handler (Ctrl-C, SIGTERM) crashes the process with a segmentation fault instead of
stopping the run cleanly. `_keeping_signal_stack` puts the caller's stack back right after
compiling, so every compiled model restores that one.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from totalseg.inference.kernels import Kernels

__all__ = ["OpenVinoNetwork", "cache_key"]

log = logging.getLogger(__name__)

_HINTS = {"fp32": "f32", "bf16": "bf16"}


def cache_key(network: torch.nn.Module, input_shape: Sequence[int], version: str) -> str:
    """sha256 over the OpenVINO version, the input shape, the module tree and every weight."""
    digest = hashlib.sha256()
    digest.update(f"{version}|{tuple(int(s) for s in input_shape)}|{network!r}".encode())
    for name, tensor in network.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:32]


def _example_shape(network: torch.nn.Module, patch: Sequence[int]) -> list[int]:
    spec = getattr(network, "spec", None)
    strides = getattr(spec, "strides", None)
    if not strides:
        return [int(p) for p in patch]
    total = [math.prod(int(s[a]) for s in strides) for a in range(len(patch))]
    return [min(int(p), 2 * t) for p, t in zip(patch, total, strict=True)]


def _convert(network: torch.nn.Module, n_in: int, patch: Sequence[int]) -> Any:
    import openvino as ov
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        example = torch.zeros((1, n_in, *_example_shape(network, patch)))
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        decoder = TorchScriptPythonDecoder(
            network, example_input=(example,), shared_memory=False,
            trace_kwargs={"check_trace": False},  # the check re-runs the trace twice
        )  # fmt: skip
        frontend = FrontEndManager().load_by_framework("pytorch")
        model = frontend.convert(frontend.load(decoder))
    model.reshape({model.inputs[0]: ov.PartialShape([1, n_in, *(int(p) for p in patch)])})
    return model


def _cached_model(
    network: torch.nn.Module, n_in: int, patch: Sequence[int], cache_dir: Path | None
) -> Any:
    """The converted model, from the cache when there, else converted (and cached)."""
    import openvino as ov

    if cache_dir is None:
        return _convert(network, n_in, patch)
    key = cache_key(network, (n_in, *patch), ov.__version__)
    entry = cache_dir / key
    if (entry / "model.xml").is_file() and (entry / "model.bin").is_file():
        log.debug("OpenVINO model from the cache %s", entry)
        return ov.Core().read_model(entry / "model.xml")
    model = _convert(network, n_in, patch)
    tmp = cache_dir / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        ov.save_model(model, tmp / "model.xml", compress_to_fp16=False)
        os.replace(tmp, entry)
    except OSError as exc:
        log.warning("could not cache the converted OpenVINO model in %s: %s", cache_dir, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model


class _StackT(ctypes.Structure):  # POSIX stack_t
    _fields_ = [
        ("ss_sp", ctypes.c_void_p),
        ("ss_flags", ctypes.c_int),
        ("ss_size", ctypes.c_size_t),
    ]


def _signal_stack() -> tuple[Any, _StackT] | None:
    """libc and the calling thread's alternate signal stack; None without a POSIX libc."""
    try:
        libc = ctypes.CDLL(None)
        current = _StackT()
        return (libc, current) if libc.sigaltstack(None, ctypes.byref(current)) == 0 else None
    except (OSError, AttributeError, TypeError):
        return None


@contextmanager
def _keeping_signal_stack() -> Iterator[None]:
    """The calling thread's alternate signal stack as it was before the block (POSIX only)."""
    saved = _signal_stack()
    try:
        yield
    finally:
        if saved is not None:
            libc, stack = saved
            libc.sigaltstack(ctypes.byref(stack), None)


class OpenVinoNetwork:
    """Called like the torch network on (N, C, *patch) CPU tensors; returns fp32 logits.

    Compiled once for one tile with the precision hint pinned and `n_threads` inference threads
    (latency mode, one stream); tiles of a batch run one after the other.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        kernels: Kernels,
        *,
        n_in: int,
        patch_size: Sequence[int],
        n_threads: int,
        cache_dir: Path | None = None,
    ) -> None:
        import openvino as ov

        self.patch_size = tuple(int(p) for p in patch_size)
        model = _cached_model(network, n_in, self.patch_size, cache_dir)
        config = {
            "INFERENCE_PRECISION_HINT": _HINTS[kernels.precision],
            "INFERENCE_NUM_THREADS": int(n_threads),
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        with _keeping_signal_stack():
            self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = str(hint.get_type_name())  # what OpenVINO compiled: f32 or bf16

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for tile in x.detach().to("cpu", torch.float32):
            array = np.ascontiguousarray(tile[None].numpy())
            result = self.request.infer({0: array}, share_inputs=True)
            outputs.append(torch.from_numpy(np.array(result[0], dtype=np.float32, copy=True)))
        return torch.cat(outputs)
