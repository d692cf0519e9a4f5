"""A loaded model on a device: sliding-window logits over every fold, kept loaded across cases.

Folds are combined like `nnUNetPredictor.predict_logits_from_preprocessed_data`: each fold's
logits (fp16, or fp32 with `accumulate_fp32`) are summed on the CPU and divided by the number of
folds in that dtype. See `sliding_window` for the per-tile arithmetic of the modes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from totalseg.errors import ConfigError, InputError
from totalseg.inference.device import resolve_device, torch_threads
from totalseg.inference.kernels import Kernels, resolve_kernels, wrap_torch
from totalseg.inference.sliding_window import (
    ProgressFn,
    WindowOptions,
    n_tiles,
    predict_sliding_window,
)
from totalseg.models.folder import LoadedModel

__all__ = ["InferenceOptions", "Predictor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceOptions:
    """How to run a model: device, exactness, tile step, test-time mirroring, batching, threads.

    `mirroring` only takes effect when the checkpoint allows it (its mirror axes are not None).
    `batch_size=None` means 1 on the CPU and in parity mode, 2 on a GPU. `n_threads=None` leaves
    torch's intra-op thread count as it is. `channels_last` and `accumulate_fp32` are fast-mode
    options (see `sliding_window`). `backend` and `precision` choose the kernels (see
    `inference.kernels`; precision None: fp32 on the CPU, fp16 autocast on CUDA);
    `cache_dir` holds converted OpenVINO models (None: convert on every start).
    """

    device: str = "auto"
    parity: bool = False
    tile_step: float = 0.5
    mirroring: bool = True
    batch_size: int | None = None
    n_threads: int | None = None
    channels_last: bool = False
    accumulate_fp32: bool = False
    # kernels (see inference.kernels)
    backend: str = "auto"
    precision: str | None = None
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not 0 < self.tile_step <= 1:
            raise ConfigError(f"Expected a tile step in (0, 1], got {self.tile_step}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"Expected a tile batch size >= 1, got {self.batch_size}.")
        if self.parity and self.batch_size not in (None, 1):
            raise ConfigError(f"Expected batch size 1 in parity mode, got {self.batch_size}.")
        self.kernels()  # refuse a bad back-end/precision before any model is loaded

    def kernels(self) -> Kernels:
        """The back-end and precision these options resolve to on this machine."""
        device = resolve_device("cpu" if _cpu_only(self) else self.device)
        return resolve_kernels(self.backend, self.precision, device, parity=self.parity)


class Predictor:
    """Holds a `LoadedModel` on a device and predicts logits for preprocessed arrays."""

    def __init__(self, model: LoadedModel, options: InferenceOptions | None = None) -> None:
        self.model = model
        self.options = options or InferenceOptions()
        self.kernels = self.options.kernels()
        self.device = self.kernels.device
        layout = torch.channels_last_3d if self.options.channels_last else torch.contiguous_format
        self.networks = [self._kernel(net, layout) for net in model.networks]
        log.info("model %s: %s", model.folder.name, self.kernels.describe())
        batch = self.options.batch_size
        if batch is None:
            batch = 1 if self.options.parity or self.device.type == "cpu" else 2
        axes = model.mirror_axes if self.options.mirroring else None
        self.window = WindowOptions(
            patch_size=tuple(int(p) for p in model.plan.patch_size),
            tile_step=self.options.tile_step,
            mirror_axes=None if axes is None else tuple(axes),
            parity=self.options.parity,
            batch_size=batch,
            channels_last=self.options.channels_last,
            accumulate_fp32=self.options.accumulate_fp32,
        )

    def _kernel(self, network: torch.nn.Module, layout: torch.memory_format) -> Any:
        if self.kernels.backend == "torch":
            return wrap_torch(_to_device(network, self.device, layout), self.kernels)
        from totalseg.inference.openvino_backend import OpenVinoNetwork

        n_threads = self.options.n_threads or torch.get_num_threads()
        return OpenVinoNetwork(
            network.eval(), self.kernels, n_in=self.model.n_in,
            patch_size=self.model.plan.patch_size, n_threads=n_threads,
            cache_dir=self.options.cache_dir,
        )  # fmt: skip

    @property
    def n_folds(self) -> int:
        return len(self.networks)

    def n_tiles(self, shape: Sequence[int]) -> int:
        """Forward passes of one fold (tiles, without mirroring) for a preprocessed shape."""
        return n_tiles(shape, self.window)

    def predict_logits(
        self, data: np.ndarray | torch.Tensor, *, progress: ProgressFn | None = None
    ) -> torch.Tensor:
        """(C, X, Y, Z) preprocessed input -> (K, X, Y, Z) CPU logits (fp16 unless accumulate_fp32).

        `progress(done, total)` counts tiles over all folds.
        """
        tensor = torch.as_tensor(
            np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data
        )
        expected = self.model.n_in
        if tensor.ndim != 4 or tensor.shape[0] != expected:
            raise InputError(
                f"Expected {expected} input channel(s) as a (C, X, Y, Z) array for model "
                f"'{self.model.folder.name}', got shape {tuple(tensor.shape)}; dataset.json "
                f"lists channels {list(self.model.dataset.channel_names)}."
            )
        tensor = tensor.to(torch.float32)
        per_fold = self.n_tiles(tensor.shape[1:])
        total = per_fold * self.n_folds
        result: torch.Tensor | None = None
        with torch_threads(self.options.n_threads), torch.inference_mode():
            for i, network in enumerate(self.networks):
                fold_progress = _offset(progress, i * per_fold, total)
                logits = predict_sliding_window(
                    network,
                    tensor,
                    self.window,
                    device=self.device,
                    n_classes=self.model.n_out,
                    progress=fold_progress,
                )
                result = logits if result is None else result.add_(logits)
            assert result is not None
            if self.n_folds > 1:
                result /= self.n_folds
        return result


def _to_device(network: torch.nn.Module, device: torch.device, layout: torch.memory_format) -> Any:
    moved = network.to(device)
    moved = moved.to(memory_format=layout)  # type: ignore[call-overload]
    return moved.eval()


def _cpu_only(options: InferenceOptions) -> bool:
    """OpenVINO runs on the CPU: `auto` devices become the CPU for it."""
    return options.backend == "openvino" and options.device.strip().lower() == "auto"


def _offset(progress: ProgressFn | None, offset: int, total: int) -> ProgressFn | None:
    if progress is None:
        return None

    def report(done: int, _: int) -> None:
        progress(offset + done, total)

    return report
