"""nnU-Net 1's inference pipeline (package nnunet 1.7.1) on in-memory arrays, for v1 model folders.

The three places where it differs from nnU-Net 2 (nnunet_v2_format.md 7.4):
- `preprocess_case_v1` (GenericPreprocessor.preprocess_test_case): float32 -> crop to the filled
  nonzero mask (before the transpose) -> transpose_forward -> NaN to 0 -> resample (order 3,
  order_z 0, separate z when max/min spacing > 3; skipped when the shape is unchanged) ->
  normalise ('CT': clip to the 0.5/99.5 percentiles, minus mean, over sd, each step computed in
  float64 from the plans' float64 constants and stored as float32, as numpy 2 does it for
  nnU-Net 1; 'CT2', 'nonCT' without mask, 'noNorm').
- `predict_probabilities_v1` (`_internal_predict_3D_3Dconv_tiled`, CPU path): tiles as in v2,
  softmax per tile, mirrors averaged with weight 1/2^k in v1's flip order, the float32 Gaussian
  (max 1, zeros replaced; only when there is more than one tile) multiplied into each tile,
  float32 accumulators, one division at the end. Folds: summed and divided in float32.
- `export_labels_v1`: mode 'normal' (predict_cases + save_segmentation_nifti_from_softmax):
  transpose back, resample the probabilities to the cropped shape (order 1, order_z 0, separate z
  decided on the original spacing first, or the plans' segmentation_export_params), argmax,
  uncrop. Mode 'fastest' (predict_cases_fastest, what TotalSegmentator 1.x ran): argmax on the
  network grid, transpose back, label map resized with order 0, uncrop. nnU-Net 1 then applies
  the model folder's `postprocessing.json`, when there is one, to the written labels
  (`V1Predictor.postprocessing`; the pipeline runs `postprocess.largest_component`).
Autocast is used only on CUDA (v1's mixed precision), so CPU results are nnU-Net 1's exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from totalseg.errors import InputError
from totalseg.inference.device import resolve_device, torch_threads
from totalseg.inference.predictor import InferenceOptions
from totalseg.inference.sliding_window import ProgressFn, _autocast
from totalseg.inference.sliding_window import (
    _all_channels as _channels,
)
from totalseg.inference.tiles import pad_to_patch, tile_grid
from totalseg.models.folder import LoadedModel
from totalseg.models.plan import IntensityProperties, Plan
from totalseg.models.v1.layout import read_postprocessing
from totalseg.preprocess.crop import CropBox, box_of_mask, crop_to_box, filled_nonzero_mask
from totalseg.preprocess.resample import _resize, nnunet_new_shape, resample_to_shape

__all__ = [
    "ExportMode",
    "V1Geometry",
    "V1Predictor",
    "export_labels_v1",
    "predict_probabilities_v1",
    "preprocess_case_v1",
]

ExportMode = Literal["normal", "fastest"]
# v1's eight mirror passes: (flipped tensor dims, mirror axes that must all be enabled)
_MIRRORS = (
    ((), ()), ((4,), (2,)), ((3,), (1,)), ((4, 3), (2, 1)),
    ((2,), (0,)), ((4, 2), (0, 2)), ((3, 2), (0, 1)), ((4, 3, 2), (0, 1, 2)),
)  # fmt: skip


@dataclass(frozen=True)
class V1Geometry:
    """nnU-Net 1's per-case `properties` that export needs (raw array order unless noted)."""

    original_spacing: tuple[float, ...]
    crop: CropBox
    resampled_spacing: tuple[float, ...]  # the plan's current_spacing (transposed order)


def preprocess_case_v1(
    data: np.ndarray, spacing: Sequence[float], plan: Plan
) -> tuple[np.ndarray, V1Geometry]:
    """(C, ...) image in array order and its spacing -> (C, ...) float32 network input."""
    n = len(plan.normalization_schemes)
    if data.ndim != 4 or data.shape[0] != n:
        raise InputError(
            f"Expected {n} input channel(s) of 3D data, got an array of shape {data.shape}; the "
            f"model's plans list {n} modalit(y/ies)."
        )
    data = data.astype(np.float32)
    box = box_of_mask(filled_nonzero_mask(data))
    data = crop_to_box(data, box)
    tf = plan.transpose_forward
    data = np.ascontiguousarray(data.transpose([0, *[i + 1 for i in tf]]))
    data[np.isnan(data)] = 0
    spacing_t = [float(spacing[i]) for i in tf]
    target = [float(s) for s in plan.spacing_mm]
    data = resample_to_shape(
        data,
        nnunet_new_shape(data.shape[1:], spacing_t, target),
        spacing=spacing_t,
        new_spacing=target,
        order=3,
        order_z=0,
        force_separate_z=None,
    )
    for c, scheme in enumerate(plan.normalization_schemes):
        stats = plan.intensity_properties[c] if c < len(plan.intensity_properties) else None
        data[c] = _normalize_v1(data[c], scheme, stats)
    geometry = V1Geometry(tuple(float(s) for s in spacing), box, tuple(target))
    return data.astype(np.float32, copy=False), geometry


def _normalize_v1(x: np.ndarray, scheme: str, stats: IntensityProperties | None) -> np.ndarray:
    if scheme == "noNorm":
        return x
    if scheme == "nonCT":
        mn, sd = x.mean(), x.std()
        return (x - mn) / (sd + 1e-8)
    assert stats is not None  # read_v1_plans requires them for CT and CT2
    lb, ub = np.float64(stats.percentile_00_5), np.float64(stats.percentile_99_5)
    if scheme == "CT":
        clipped = np.clip(x, lb, ub).astype(np.float32)
        mean, sd = np.float64(stats.mean), np.float64(stats.std)
        return ((clipped - mean) / sd).astype(np.float32)
    mask = (x > lb) & (x < ub)  # CT2: clip, then the case's own mean / sd inside the window
    clipped = np.clip(x, lb, ub).astype(np.float32)
    mn, sd = clipped[mask].mean(), clipped[mask].std()
    return (clipped - mn) / sd


@lru_cache(maxsize=8)
def _gaussian_v1(patch: tuple[int, ...]) -> np.ndarray:
    tmp = np.zeros(patch)
    tmp[tuple(p // 2 for p in patch)] = 1
    g = gaussian_filter(tmp, [p / 8 for p in patch], 0, mode="constant", cval=0)
    g = (g / np.max(g) * 1).astype(np.float32)
    g[g == 0] = np.min(g[g != 0])
    g.flags.writeable = False
    return g


def _mirrored_softmax(
    network: torch.nn.Module, x: torch.Tensor, axes: tuple[int, ...] | None
) -> torch.Tensor:
    """v1's `_internal_maybe_mirror_and_pred_3D`: mean softmax over the enabled mirrors."""
    enabled = set(axes or ())
    weight = 1 / 2 ** len(enabled)
    result: torch.Tensor | None = None
    for dims, needs in _MIRRORS:
        if not set(needs) <= enabled:
            continue
        flipped = torch.flip(x, dims) if dims else x
        pred = F.softmax(network(flipped), 1).float()
        pred = weight * (torch.flip(pred, dims) if dims else pred)
        result = pred if result is None else result + pred  # v1 adds into zeros: exact
    assert result is not None
    return result


def predict_probabilities_v1(
    network: torch.nn.Module,
    data: torch.Tensor,
    *,
    patch_size: Sequence[int],
    tile_step: float,
    mirror_axes: tuple[int, ...] | None,
    device: torch.device,
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """(K, X, Y, Z) float32 class probabilities on the CPU for a (C, X, Y, Z) input."""
    patch = tuple(int(p) for p in patch_size)
    with torch.inference_mode(), _autocast(device):
        padded, unpad = pad_to_patch(data.to(device), patch)
        tiles = tile_grid(padded.shape[1:], patch, tile_step)
        gaussian = None
        if len(tiles) > 1:
            gaussian = torch.from_numpy(_gaussian_v1(patch).copy()).to(device)
        weight = gaussian if gaussian is not None else torch.ones(patch, device=device)
        acc: torch.Tensor | None = None
        counts = torch.zeros(padded.shape[1:], dtype=torch.float32, device=device)
        for done, tile in enumerate(tiles, start=1):
            pred = _mirrored_softmax(network, padded[_channels(tile)][None], mirror_axes)[0]
            if gaussian is not None:
                pred = pred * gaussian
            if acc is None:
                acc = torch.zeros((pred.shape[0], *padded.shape[1:]), device=device)
            acc[_channels(tile)] += pred
            counts[tile] += weight
            if progress is not None:
                progress(done, len(tiles))
        assert acc is not None
        acc = acc[_channels(unpad)] / counts[unpad]
    return acc.cpu()


def export_labels_v1(
    probabilities: np.ndarray, geometry: V1Geometry, plan: Plan, *, mode: ExportMode = "normal"
) -> np.ndarray:
    """(K, ...) probabilities on the network grid -> labels in the case's original array order."""
    back = list(plan.transpose_backward)
    cropped = geometry.crop.shape
    if mode == "fastest":
        seg = probabilities.argmax(0).transpose(back)
        if tuple(seg.shape) != tuple(cropped):
            seg = _resize(seg.astype(np.float64), cropped, 0)
    else:
        probs = probabilities.transpose([0, *[i + 1 for i in back]])
        rs = plan.resampling_probabilities
        probs = resample_to_shape(
            probs,
            cropped,
            spacing=geometry.original_spacing,
            new_spacing=geometry.resampled_spacing,
            order=rs.order,
            order_z=rs.order_z,
            force_separate_z=rs.force_separate_z,
        )
        seg = probs.argmax(0)
    full = np.zeros(geometry.crop.source_shape, dtype=np.uint8)
    full[geometry.crop.slices] = seg
    return full


class V1Predictor:
    """A v1 `LoadedModel` on a device: preprocessing, probabilities over folds, export.

    Of the `InferenceOptions`, device, tile_step, mirroring and n_threads apply; parity,
    batch_size, channels_last and accumulate_fp32 do not: the v1 path always runs nnU-Net 1's
    arithmetic (one tile at a time, float32), so on the CPU it is its parity mode.
    """

    def __init__(self, model: LoadedModel, options: InferenceOptions | None = None) -> None:
        self.model = model
        self.options = options or InferenceOptions()
        self.device = resolve_device(self.options.device)
        self.networks = [net.to(self.device).eval() for net in model.networks]
        self.mirror_axes = model.mirror_axes if self.options.mirroring else None
        #: (classes, min sizes in mm3 or None) of postprocessing.json, or None without one
        self.postprocessing = read_postprocessing(model.folder)

    @property
    def n_folds(self) -> int:
        return len(self.networks)

    def n_tiles(self, shape: Sequence[int]) -> int:
        padded = [
            max(int(s), int(p)) for s, p in zip(shape, self.model.plan.patch_size, strict=True)
        ]
        return len(tile_grid(padded, self.model.plan.patch_size, self.options.tile_step))

    def preprocess(
        self, data: np.ndarray, spacing: Sequence[float]
    ) -> tuple[np.ndarray, V1Geometry]:
        return preprocess_case_v1(data, spacing, self.model.plan)

    def predict_labels(
        self,
        data: np.ndarray,
        geometry: V1Geometry,
        *,
        mode: ExportMode = "normal",
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """Preprocessed (C, X, Y, Z) input -> label array in the case's original array order."""
        tensor = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        per_fold = self.n_tiles(tensor.shape[1:])
        outputs = []
        with torch_threads(self.options.n_threads):
            for i, network in enumerate(self.networks):
                report = None
                if progress is not None:
                    report = _offset(progress, i * per_fold, per_fold * self.n_folds)
                outputs.append(
                    predict_probabilities_v1(
                        network, tensor, patch_size=self.model.plan.patch_size,
                        tile_step=self.options.tile_step, mirror_axes=self.mirror_axes,
                        device=self.device, progress=report,
                    ).numpy()
                )  # fmt: skip
        if mode == "fastest" and len(outputs) > 1:  # v1 keeps the folds' softmax in float16
            probs = np.mean(np.stack([o.astype(np.float16) for o in outputs]), 0)
        else:
            probs = outputs[0]
            for other in outputs[1:]:
                probs += other
            if len(outputs) > 1:
                probs /= len(outputs)
        return export_labels_v1(probs, geometry, self.model.plan, mode=mode)


def _offset(progress: ProgressFn, offset: int, total: int) -> ProgressFn:
    def report(done: int, _: int) -> None:
        progress(offset + done, total)

    return report
