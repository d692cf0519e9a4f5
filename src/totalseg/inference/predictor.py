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
from totalseg.inference.nnunet import CaseGeometry, case_labels, export_labels
from totalseg.inference.sliding_window import (
    ProgressFn,
    WindowOptions,
    WindowStats,
    n_tiles,
    predict_sliding_window,
)
from totalseg.models.folder import LoadedModel
from totalseg.models.plan import Plan

__all__ = ["InferenceOptions", "Predictor", "labels_from_logits"]

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
    def resident(self) -> bool:
        """Whether a case stays on the device from the input tensor to the labels (CUDA)."""
        return self.device.type == "cuda"

    @property
    def n_folds(self) -> int:
        return len(self.networks)

    def n_tiles(self, shape: Sequence[int], body: np.ndarray | None = None) -> int:
        """Forward passes of one fold (tiles, without mirroring) for a preprocessed shape (only
        the tiles that hold a voxel of `body`, when given)."""
        return n_tiles(shape, self.window, body)

    def predict_logits(
        self,
        data: np.ndarray | torch.Tensor,
        *,
        progress: ProgressFn | None = None,
        body: np.ndarray | None = None,
        stats: WindowStats | None = None,
        keep_on_device: bool = False,
    ) -> torch.Tensor:
        """(C, X, Y, Z) preprocessed input -> (K, X, Y, Z) logits (fp16 unless accumulate_fp32),
        on the CPU, or left on the device with `keep_on_device` (folds are summed there).

        `progress(done, total)` counts tiles over all folds. `body`: a boolean mask of the
        spatial shape; tiles without a body voxel are skipped (see `sliding_window`). `stats`
        adds up tiles and seconds over the folds.
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
        per_fold = self.n_tiles(tensor.shape[1:], body)
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
                    body=body,
                    stats=stats,
                    keep_on_device=keep_on_device,
                )
                result = logits if result is None else result.add_(logits)
            assert result is not None
            if self.n_folds > 1:
                result /= self.n_folds
        return result


def labels_from_logits(
    logits: torch.Tensor, geometry: CaseGeometry, plan: Plan, *, on_device: bool
) -> np.ndarray:
    """nnU-Net's export (`inference.nnunet.export_labels`) of (K, X, Y, Z) logits.

    `on_device` (the GPU-resident path): when the export needs no resampling (the network grid
    is the cropped case grid, as for every named task), the argmax runs where the logits are and
    only the labels travel to the CPU; ties go to the lowest index as in numpy. Otherwise, and
    without `on_device`, the logits are exported by numpy on the CPU.
    """
    dtype = np.uint8 if logits.shape[0] - 1 < 255 else np.uint16
    if on_device and tuple(logits.shape[1:]) == tuple(geometry.cropped_shape):
        seg = _argmax_in_slabs(logits)
        return case_labels(seg.cpu().numpy().astype(dtype), geometry, plan)
    return export_labels(logits.cpu().numpy(), geometry, plan)


def _argmax_in_slabs(logits: torch.Tensor, voxels_per_slab: int = 1 << 24) -> torch.Tensor:
    """torch.argmax over classes, slab by slab along the first spatial axis (bounded temporary
    memory on the device)."""
    per_slice = max(1, int(np.prod(logits.shape[2:])) * int(logits.shape[0]))
    step = max(1, voxels_per_slab // per_slice)
    out = torch.empty(logits.shape[1:], dtype=torch.int32, device=logits.device)
    for start in range(0, logits.shape[1], step):
        out[start : start + step] = torch.argmax(logits[:, start : start + step], dim=0)
    return out


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
