"""Sliding-window prediction with Gaussian importance weighting (nnU-Net v2 semantics).

Pure: a (C, X, Y, Z) float32 tensor and a network in, (K, X, Y, Z) logits out. Every mode uses
nnU-Net's tiles: zero padding up to the patch size, positions from `np.round`, x-y-z order, the
fp16 Gaussian (max 10, underflowed corners replaced by the smallest nonzero entry).

* parity (`parity=True`): bit-exact with `nnUNetPredictor` -- batch size 1, contiguous tensors,
  fp16 accumulators where each add is computed in fp32 and rounded to fp16, logits averaged over
  mirror flips, the final division in fp16. Returns fp16 logits.
* fast (default): the same arithmetic and memory (fp16 accumulators, fp16 result), but tiles may
  be batched (`batch_size`; the Predictor uses 1 on the CPU, where the result then equals
  parity bit for bit, and 2 on GPUs) and run in channels-last memory format (`channels_last`,
  off by default: no measurable gain on the CPUs tried). With batching or channels-last the
  convolution kernels may round the last bits differently, so the argmax can differ from parity
  at voxels whose two best logits are (near) fp16 ties; tested per-class Dice >= 0.999.
* `accumulate_fp32=True` (fast mode only): fp32 accumulators and result -- twice the memory, and
  more exact than nnU-Net where only Gaussian tails cover a voxel (volume corners/faces), where
  fp16 products of logits and weights around 1e-7 underflow and nnU-Net's logits degrade to 0.
  There it disagrees with nnU-Net (about 0.05 % of voxels on random-weight models, see tests).

Autocast (fp16 mixed precision) is enabled only on CUDA, in every mode, as nnU-Net does.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from totalseg.errors import ConfigError, InputError, ModelError
from totalseg.inference.tiles import (
    Tile,
    body_tiles,
    gaussian_importance,
    n_grid_tiles,
    pad_to_patch,
    tile_grid,
    tile_starts,
)

__all__ = [
    "ProgressFn",
    "WindowOptions",
    "WindowStats",
    "gaussian_importance",
    "n_tiles",
    "predict_sliding_window",
    "tile_grid",
    "tile_starts",
]

ProgressFn = Callable[[int, int], None]
Network = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class WindowOptions:
    """How to tile: patch size (array order), step fraction, mirror axes, precision, batching."""

    patch_size: tuple[int, ...]
    tile_step: float = 0.5
    mirror_axes: tuple[int, ...] | None = None
    parity: bool = False
    batch_size: int = 1
    use_gaussian: bool = True
    channels_last: bool = False
    accumulate_fp32: bool = False

    def __post_init__(self) -> None:
        if len(self.patch_size) != 3 or any(int(p) < 1 for p in self.patch_size):
            raise ConfigError(
                f"Expected a 3D patch size of positive ints, got {self.patch_size}; 2D "
                "configurations are not supported."
            )
        if not 0 < self.tile_step <= 1:
            raise ConfigError(f"Expected a tile step in (0, 1], got {self.tile_step}.")
        if self.batch_size < 1:
            raise ConfigError(f"Expected a tile batch size >= 1, got {self.batch_size}.")
        if self.parity and self.batch_size != 1:
            raise ConfigError(
                f"Expected batch size 1 in parity mode (nnU-Net predicts one tile at a time), "
                f"got {self.batch_size}."
            )
        if self.parity and (self.channels_last or self.accumulate_fp32):
            raise ConfigError(
                "Expected nnU-Net's arithmetic in parity mode, got channels_last or "
                "accumulate_fp32; drop them or parity."
            )
        if self.mirror_axes is not None and any(a not in (0, 1, 2) for a in self.mirror_axes):
            raise ConfigError(f"Expected mirror axes among 0, 1, 2, got {self.mirror_axes}.")


def _all_channels(tile: tuple[slice, ...]) -> tuple[slice, ...]:
    return (slice(None), *tile)


def _mirror_combos(axes: tuple[int, ...] | None) -> list[tuple[int, ...]]:
    if not axes:
        return []
    dims = [a + 2 for a in axes]
    return [c for i in range(len(dims)) for c in itertools.combinations(dims, i + 1)]


def _forward(network: Network, x: torch.Tensor, combos: list[tuple[int, ...]]) -> torch.Tensor:
    """network(x), averaged with its mirrored predictions (logits, like nnU-Net)."""
    pred = network(x)
    if combos:
        for dims in combos:
            pred += torch.flip(network(torch.flip(x, dims)), dims)
        pred /= len(combos) + 1
    return pred


def _batches(tiles: list[Tile], size: int) -> Iterator[list[Tile]]:
    for i in range(0, len(tiles), size):
        yield tiles[i : i + size]


Batch = list[Tile]


def _prefetch(
    data: torch.Tensor, batches: list[Batch], layout: torch.memory_format, device: torch.device
) -> Iterator[tuple[torch.Tensor, Batch]]:
    """Tile batches copied (and moved to the device) by a producer thread, two ahead, like
    nnU-Net's predictor. Copying overlaps with compute; on a busy CPU the forward passes of the
    main thread also run markedly faster with the producer thread alive (measured, see
    benchmarks/inference/README.md)."""
    slots: queue.Queue[tuple[torch.Tensor, Batch] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: tuple[torch.Tensor, Batch] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                x = torch.stack([data[_all_channels(t)] for t in batch])
                if not put((x.contiguous(memory_format=layout).to(device), batch)):
                    return
            put(None)
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(exc)

    worker = threading.Thread(target=produce, name="totalseg-tiles", daemon=True)
    worker.start()
    try:
        while (item := slots.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[None]:
    if device.type == "cuda":
        return torch.autocast("cuda", enabled=True)
    return contextlib.nullcontext()


def _check_output(pred: torch.Tensor, n_tiles: int, n_classes: int | None) -> None:
    if pred.ndim != 5 or pred.shape[0] != n_tiles:
        raise ModelError(
            f"Expected the network to return (N, K, X, Y, Z) logits, got shape "
            f"{tuple(pred.shape)}; is this a 3D segmentation network?"
        )
    if n_classes is not None and pred.shape[1] != n_classes:
        raise ModelError(
            f"Expected {n_classes} output channels (dataset.json labels), got {pred.shape[1]}; "
            "the checkpoint and dataset.json do not belong together."
        )


@dataclass
class WindowStats:
    """What `predict_sliding_window` did, added up over calls: tiles run and skipped (outside
    the body), seconds in forward passes and in the accumulation (weighting, adding, dividing).
    """

    n_tiles_run: int = 0
    n_tiles_skipped: int = 0
    network_s: float = 0.0
    accumulation_s: float = 0.0


def predict_sliding_window(
    network: Network,
    data: torch.Tensor,
    options: WindowOptions,
    *,
    device: torch.device | None = None,
    n_classes: int | None = None,
    progress: ProgressFn | None = None,
    body: np.ndarray | None = None,
    stats: WindowStats | None = None,
    keep_on_device: bool = False,
) -> torch.Tensor:
    """Logits (K, X, Y, Z) for a preprocessed (C, X, Y, Z) tensor; fp16 unless accumulate_fp32.

    The case tensor, Gaussian and accumulators live on `device` (the network's device); the
    result is moved to the CPU unless `keep_on_device` (the GPU-resident path).
    With `body` (a boolean mask of the spatial shape) only tiles holding a body voxel run; body
    voxels get exactly the logits of a run without skipping, voxels no run tile covers get
    background (class 0 logit 1, the others 0).
    """
    if data.ndim != 4:
        raise InputError(f"Expected a (C, X, Y, Z) tensor, got shape {tuple(data.shape)}.")
    device = device or torch.device("cpu")
    tiles = body_tiles(data.shape[1:], options.patch_size, options.tile_step, body)
    if stats is not None:
        stats.n_tiles_skipped += n_grid_tiles(
            data.shape[1:], options.patch_size, options.tile_step
        ) - len(tiles)
    with torch.inference_mode(), _autocast(device):
        padded, unpad = pad_to_patch(data.to(device), options.patch_size)
        run = _Run(network, options, device, n_classes, progress, stats or WindowStats())
        logits = run.accumulate(padded, tiles, skipped=body is not None)
    keep = (slice(None), *unpad)
    return logits[keep] if keep_on_device else logits[keep].cpu()


@dataclass
class _Run:
    network: Network
    options: WindowOptions
    device: torch.device
    n_classes: int | None
    progress: ProgressFn | None
    stats: WindowStats

    def accumulate(self, data: torch.Tensor, tiles: list[Tile], *, skipped: bool) -> torch.Tensor:
        options, device = self.options, self.device
        acc_dtype = torch.float32 if options.accumulate_fp32 else torch.float16
        layout = torch.channels_last_3d if options.channels_last else torch.contiguous_format
        weight: torch.Tensor | float = 1.0
        if options.use_gaussian:
            weight = gaussian_importance(options.patch_size, dtype=acc_dtype, device=device)
        weights = (weight, weight.float()) if isinstance(weight, torch.Tensor) else None
        combos = _mirror_combos(options.mirror_axes)
        logits: torch.Tensor | None = None
        counts = torch.zeros(data.shape[1:], dtype=acc_dtype, device=device)
        done = 0
        batches = list(_batches(tiles, options.batch_size))
        for x, batch in _prefetch(data, batches, layout, device):
            started = time.perf_counter()
            pred = _forward(self.network, x, combos)
            _check_output(pred, len(batch), self.n_classes)
            added = time.perf_counter()
            if logits is None:
                logits = torch.zeros((pred.shape[1], *counts.shape), dtype=acc_dtype, device=device)
            for i, tile in enumerate(batch):
                _add_tile(
                    logits[_all_channels(tile)], pred[i], weights, fp32=options.accumulate_fp32
                )
                counts[tile] += weight
            done += len(batch)
            self.stats.n_tiles_run += len(batch)
            self.stats.network_s += added - started
            self.stats.accumulation_s += time.perf_counter() - added
            if self.progress is not None:
                self.progress(done, len(tiles))
        started = time.perf_counter()
        if logits is None:  # no tile holds a body voxel
            logits = self._empty(tuple(data.shape[1:]), acc_dtype)
        else:
            _divide(logits, counts, skipped=skipped)
        self.stats.accumulation_s += time.perf_counter() - started
        return logits

    def _empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        if self.n_classes is None:
            raise ModelError(
                "Expected at least one tile inside the body, got none; pass n_classes so that "
                "an all-background result can be built."
            )
        logits = torch.zeros((self.n_classes, *shape), dtype=dtype, device=self.device)
        logits[0] = 1
        return logits


def _add_tile(
    view: torch.Tensor,
    pred: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    fp32: bool,
) -> None:
    """view += pred * weight with nnU-Net's arithmetic, in fewer passes.

    `weights`: the Gaussian in the accumulator dtype and as fp32. An fp32 prediction times the
    fp16 Gaussian is computed in fp32 by type promotion, so it is multiplied by the Gaussian cast
    to fp32 once (exact, no per-element conversion); an fp16 prediction (CUDA autocast) is
    multiplied by the fp16 Gaussian and rounded to fp16, as nnU-Net's `prediction *= gaussian`.
    The add is an `out=` kernel per class: computed in the promoted dtype, rounded once into the
    view, bit for bit nnU-Net's in-place `+=` and about four times faster for mixed dtypes on
    the CPU (a strided 4D mixed-dtype add takes torch's slow path).
    """
    p = pred.to(torch.float32) if fp32 else pred
    if weights is not None:
        p.mul_(weights[1] if p.dtype == torch.float32 else weights[0])
    for k in range(view.shape[0]):  # per class: torch's fast path for strided mixed dtypes
        torch.add(view[k], p[k], out=view[k])


def _divide(logits: torch.Tensor, counts: torch.Tensor, *, skipped: bool) -> None:
    """Weighted sums -> averages in place; voxels no tile covered (only when tiles were skipped)
    become background."""
    uncovered = counts == 0 if skipped else None
    if uncovered is not None:
        counts[uncovered] = 1
        logits[0][uncovered] = 1
    torch.div(logits, counts, out=logits)
    if not _all_finite(logits):
        raise ModelError(
            "Expected finite logits, got inf or NaN after the accumulation; rerun with fp32 "
            "accumulation (accumulate_fp32=True), and check the model's weights."
        )


def _all_finite(logits: torch.Tensor) -> bool:
    """No inf or NaN: the minimum and maximum propagate NaN, and one `aminmax` reduction is an
    order of magnitude faster than `isinf` on fp16 CPU tensors."""
    low, high = torch.aminmax(logits)
    return bool(torch.isfinite(low) & torch.isfinite(high))


def n_tiles(shape: Sequence[int], options: WindowOptions, body: np.ndarray | None = None) -> int:
    """How many tiles `predict_sliding_window` will run for a (spatial) shape (and body mask)."""
    if body is None:
        return n_grid_tiles(shape, options.patch_size, options.tile_step)
    return len(body_tiles(shape, options.patch_size, options.tile_step, body))
