"""nnU-Net v2's case preprocessing and export, in its exact order, on in-memory arrays.

`preprocess_case` = DefaultPreprocessor.run_case_npy at inference: float32 -> transpose_forward
-> crop to the filled nonzero mask -> normalise per channel -> resample to the plan spacing.
`export_labels` = convert_predicted_logits_to_segmentation_with_correct_shape: logits resampled
back with the plan's probability resampling (order 1; fp16 stays fp16), argmax (ties to the lowest
index), crop undone, transpose_backward.

Axes: nnU-Net reads NIfTI with SimpleITK, whose array order is the reverse of the NIfTI/nibabel
order totalseg uses, with the spacing reversed too. `to_array_order` / `from_array_order` are the
one conversion between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from totalseg.errors import InputError
from totalseg.inference.argmax import argmax_classes
from totalseg.models.plan import Plan
from totalseg.preprocess.crop import (
    CropBox,
    box_of_mask,
    crop_to_box,
    filled_nonzero_mask,
    uncrop,
)
from totalseg.preprocess.normalize import normalize_channel
from totalseg.preprocess.resample import nnunet_new_shape, resample_to_shape

__all__ = [
    "CaseGeometry",
    "case_labels",
    "export_labels",
    "from_array_order",
    "header_spacing",
    "mask_to_network_grid",
    "preprocess_case",
    "to_array_order",
]


def header_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Spacing (i, j, k) as a NIfTI header stores it: float32 column norms, read back as float."""
    norms = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
    s = norms.astype(np.float32)
    return (float(s[0]), float(s[1]), float(s[2]))


def to_array_order(
    array_ijk: np.ndarray, spacing_ijk: Sequence[float]
) -> tuple[np.ndarray, tuple[float, ...]]:
    """NIfTI (i, j, k) array and spacing -> nnU-Net/SimpleITK array order (k, j, i) (views)."""
    if array_ijk.ndim != 3 or len(spacing_ijk) != 3:
        raise InputError(
            f"Expected a 3D array and 3 spacings, got shape {array_ijk.shape} and "
            f"{tuple(spacing_ijk)}."
        )
    return array_ijk.transpose(2, 1, 0), tuple(float(s) for s in spacing_ijk)[::-1]


def from_array_order(array_kji: np.ndarray) -> np.ndarray:
    """nnU-Net/SimpleITK array order (k, j, i) -> NIfTI (i, j, k) (a view)."""
    if array_kji.ndim != 3:
        raise InputError(f"Expected a 3D array, got shape {array_kji.shape}.")
    return array_kji.transpose(2, 1, 0)


@dataclass(frozen=True)
class CaseGeometry:
    """nnU-Net's per-case `properties`: what export needs to undo preprocessing."""

    spacing: tuple[float, ...]  # array order, before transpose_forward
    crop: CropBox  # in transposed order
    resampled_shape: tuple[int, ...]

    @property
    def cropped_shape(self) -> tuple[int, ...]:
        return self.crop.shape


def preprocess_case(
    data: np.ndarray, spacing: Sequence[float], plan: Plan
) -> tuple[np.ndarray, CaseGeometry]:
    """(C, ...) image in array order and its spacing -> (C, ...) float32 network input."""
    n_schemes = len(plan.normalization_schemes)
    if data.ndim != plan.n_dims + 1 or data.shape[0] != n_schemes:
        raise InputError(
            f"Expected {n_schemes} input channel(s) of {plan.n_dims}D data, got an array of "
            f"shape {data.shape}; the model's plans.json lists {n_schemes} normalisation "
            "scheme(s)."
        )
    data = data.astype(np.float32)
    tf = plan.transpose_forward
    data = data.transpose([0, *[i + 1 for i in tf]])
    spacing_t = [float(spacing[i]) for i in tf]
    mask = filled_nonzero_mask(data)
    box = box_of_mask(mask)
    data = crop_to_box(data, box)
    mask = crop_to_box(mask, box)
    target = list(plan.spacing_mm)
    if len(target) < data.ndim - 1:
        target = [spacing_t[0], *target]
    new_shape = nnunet_new_shape(data.shape[1:], spacing_t, target)
    data = _normalize(np.ascontiguousarray(data), mask, plan)
    rs = plan.resampling_data
    data = resample_to_shape(
        data,
        new_shape,
        spacing=spacing_t,
        new_spacing=target,
        order=rs.order,
        order_z=rs.order_z,
        force_separate_z=rs.force_separate_z,
        threshold=rs.separate_z_anisotropy_threshold,
    )
    return data, CaseGeometry(tuple(float(s) for s in spacing), box, tuple(new_shape))


def mask_to_network_grid(mask: np.ndarray, geometry: CaseGeometry, plan: Plan) -> np.ndarray:
    """A boolean mask of the case (array order, before preprocessing) on the network grid of
    `preprocess_case`: transpose_forward, the crop, then nearest-neighbour to the resampled
    shape (voxel centres, grid-aligned like nnU-Net's resize)."""
    if mask.shape != tuple(geometry.crop.source_shape[i] for i in plan.transpose_backward):
        raise InputError(
            f"Expected a mask of the case's shape, got {mask.shape} for a case whose transposed "
            f"shape is {geometry.crop.source_shape}."
        )
    out = mask.transpose(plan.transpose_forward)[geometry.crop.slices]
    if tuple(out.shape) != tuple(geometry.resampled_shape):
        index = [
            np.minimum(((np.arange(new) + 0.5) * old / new).astype(np.int64), old - 1)
            for old, new in zip(out.shape, geometry.resampled_shape, strict=True)
        ]
        out = out[np.ix_(*index)]
    return np.ascontiguousarray(out, dtype=bool)


def _normalize(data: np.ndarray, mask: np.ndarray, plan: Plan) -> np.ndarray:
    for c, scheme in enumerate(plan.normalization_schemes):
        stats = plan.intensity_properties[c] if c < len(plan.intensity_properties) else None
        data[c] = normalize_channel(
            data[c],
            scheme=scheme,
            stats=stats,
            use_mask_for_norm=plan.use_mask_for_norm[c],
            nonzero_mask=mask,
        )
    return data


def export_labels(logits: np.ndarray, geometry: CaseGeometry, plan: Plan) -> np.ndarray:
    """(K, ...) logits on the network grid -> label array in the case's original array order."""
    tf = plan.transpose_forward
    spacing_t = [geometry.spacing[i] for i in tf]
    current = list(plan.spacing_mm)
    if len(current) != len(geometry.cropped_shape):
        current = [spacing_t[0], *current]
    rs = plan.resampling_probabilities
    logits = resample_to_shape(
        logits,
        geometry.cropped_shape,
        spacing=current,
        new_spacing=spacing_t,
        order=rs.order,
        order_z=rs.order_z,
        force_separate_z=rs.force_separate_z,
        threshold=rs.separate_z_anisotropy_threshold,
    )
    n_foreground = logits.shape[0] - 1
    seg = argmax_classes(logits, np.uint8 if n_foreground < 255 else np.uint16)
    return case_labels(seg, geometry, plan)


def case_labels(seg: np.ndarray, geometry: CaseGeometry, plan: Plan) -> np.ndarray:
    """Labels on the cropped case grid -> the case's original array order (crop undone,
    transpose_backward): the last step of `export_labels`."""
    full = uncrop(seg, geometry.crop)
    return np.ascontiguousarray(full.transpose(plan.transpose_backward))
