"""segment(): CT in, label map on the exact input grid out. `Segmenter` keeps models loaded.

Two ways to run, both reading top to bottom:

* a named task (`total`, `total-fast`, `total-fastest`, ...), as the reference tool does it:
  read -> check finite -> closest canonical RAS -> zoom to the task spacing (int32, like the
  reference) -> per part: nnU-Net preprocessing (plan normalisation; resampling is a no-op) ->
  sliding window -> argmax -> merge parts by name into the global ids (later parts win) ->
  nearest-neighbour back to the canonical grid -> undo the reorientation -> keep roi_subset.
  With `roi_subset` on a task that has a low-res crop task (`total`, `total-fast`), that task
  runs first on the whole image, and only the bounding box of the requested structures (plus
  20 mm per side, cast to int32, as the reference tool crops) goes through the steps above;
  the result is pasted back into zeros. Nothing found -> an all-zero label map.
* a bare nnU-Net model folder (`model_dir=`), as `nnUNetPredictor` does it: nnU-Net's own
  preprocessing in its exact order, sliding window, export (order-1 logits resampling back,
  argmax, crop undone), labels named from dataset.json.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.anatomy import class_map, part_maps, resolve_names
from totalseg.errors import InputError, UnknownStructureError
from totalseg.image import Image, LabelMap
from totalseg.inference.nnunet import (
    export_labels,
    from_array_order,
    header_spacing,
    preprocess_case,
    to_array_order,
)
from totalseg.options import SegmentOptions
from totalseg.postprocess.merge import empty_merge, keep_labels, merge_into
from totalseg.postprocess.restore import restore_labels, to_model_grid
from totalseg.preprocess.crop import CropBox, box_of_mask
from totalseg.preprocess.orientation import restore, to_canonical

__all__ = ["SegmentOptions", "SegmentProgress", "Segmenter", "segment"]

log = logging.getLogger(__name__)

ImageSource = Image | str | os.PathLike[str] | Any  # Any: a nibabel Nifti1Image


@dataclass(frozen=True)
class SegmentProgress:
    """Progress of one case: which part model runs, and its tiles done out of the total."""

    part: int
    n_parts: int
    model: str
    tiles_done: int
    tiles_total: int


ProgressCallback = Callable[[SegmentProgress], None]


@dataclass(frozen=True, eq=False)
class _Part:
    name: str
    predictor: Any  # totalseg.inference.predictor.Predictor (torch; imported lazily)
    local_labels: Mapping[int, str]


def _kernel_cache(home: Path | None) -> Path:
    from totalseg.models.weights import weights_home

    return weights_home(home) / "cache" / "openvino"


def check_finite(image: Image, *, where: str = "the input image") -> None:
    """Refuse NaN/inf voxels with a count (they would silently poison normalisation)."""
    array = np.asarray(image.array)
    if array.dtype.kind != "f":
        return
    n_nan = int(np.isnan(array).sum())
    n_inf = int(np.isinf(array).sum())
    if n_nan or n_inf:
        what = f"{n_nan} NaN voxels" if not n_inf else f"{n_nan} NaN and {n_inf} infinite voxels"
        raise InputError(
            f"Expected finite HU values, got {what} in {where}; fill or mask them before "
            "segmenting."
        )


def _read(source: ImageSource, *, series_uid: str | None = None) -> tuple[Image, str]:
    """An Image, a nibabel NIfTI image (converted here, at the boundary) or a path."""
    from totalseg.io import read_any
    from totalseg.io.nifti import image_from_nifti, is_nibabel_image

    if isinstance(source, Image):
        return source, "the input image"
    if is_nibabel_image(source):
        return image_from_nifti(source), "the nibabel image"  # type: ignore[arg-type]
    if not isinstance(source, str | os.PathLike):
        raise InputError(
            f"Expected a totalseg Image, a nibabel NIfTI image or a path, got "
            f"{type(source).__name__}; e.g. segment('ct.nii.gz') or segment(nib.load(path))."
        )

    return read_any(source, series_uid=series_uid), f"'{source}'"


class Segmenter:
    """Models loaded once, called per case: `Segmenter(task="total")(path_or_image) -> LabelMap`."""

    def __init__(
        self,
        task: str | None = None,
        *,
        options: SegmentOptions | None = None,
        progress: ProgressCallback | None = None,
        download_reporter: Any = None,
        **fields: Any,
    ) -> None:
        """`options` (default `SegmentOptions()`), with `task` and any `SegmentOptions` field
        given as a keyword replacing its value: `Segmenter("total-fast", device="cpu")`.
        Missing official weights are downloaded first (see `SegmentOptions.download`), their
        progress sent to `download_reporter` (a `models.weights.DownloadReporter`)."""
        from totalseg.inference.predictor import InferenceOptions, Predictor
        from totalseg.models.folder import load_model_folder

        changes = fields if task is None else {**fields, "task": task}
        self.options = (options or SegmentOptions()).replace(**changes)
        opts = self.options
        self.progress = progress
        self._download_reporter = download_reporter
        self.model_dir = opts.model_dir
        self.task = None if self.model_dir is not None else _get_task(opts.task)
        folders = self._folders(opts.roi_subset)
        default_step = 0.5 if self.task is None else self.task.tile_step
        inference = InferenceOptions(
            device=opts.device,
            parity=opts.parity,
            tile_step=default_step if opts.tile_step is None else float(opts.tile_step),
            mirroring=(self.task is None) if opts.mirroring is None else opts.mirroring,
            batch_size=opts.batch_size,
            n_threads=opts.n_threads,
            channels_last=opts.channels_last,
            accumulate_fp32=opts.accumulate_fp32,
            backend=opts.backend,
            precision=opts.precision,
            cache_dir=_kernel_cache(opts.home),
        )
        folds = opts.folds if opts.folds is not None or self.task is None else self.task.folds
        self.parts: list[_Part] = []
        for dataset_id, folder in folders:
            model = load_model_folder(folder, folds=folds)
            self.parts.append(
                _Part(
                    _model_name(folder),
                    Predictor(model, inference),
                    self._local_labels(dataset_id, model),
                )
            )
        self.labels = self._output_labels(opts.roi_subset)
        self._cropper: Segmenter | None = None
        self._crop_names: tuple[str, ...] = tuple(self.labels.values())
        self._crop_margin_mm = opts.roi_crop_margin_mm
        crop_task = None if self.task is None else self.task.roi_crop_task
        task_crop = None if self.task is None else self.task.crop
        if task_crop is not None and opts.roi_crop:  # the task always runs on a crop
            crop_task = task_crop.task
            self._crop_names, self._crop_margin_mm = task_crop.structures, task_crop.margin_mm
        elif opts.roi_subset is None or not opts.roi_crop:
            crop_task = None
        if crop_task is not None:  # the crop task's own crop (if any) applies; the roi does not
            self._cropper = Segmenter(
                crop_task, options=opts.replace(roi_subset=None, folds=None),
                progress=progress, download_reporter=download_reporter,
            )  # fmt: skip

    # -- set-up -----------------------------------------------------------------------------

    def _folders(self, roi_subset: Sequence[str] | None) -> list[tuple[int | None, Path]]:
        from totalseg.models.release import ensure_model_folder
        from totalseg.models.weights import resolve_model_dir

        if self.model_dir is not None:
            return [(None, resolve_model_dir(self.model_dir))]
        assert self.task is not None
        datasets = list(self.task.datasets)
        if roi_subset is not None and len(datasets) > 1:
            wanted = set(resolve_names(roi_subset, version=self.task.class_map))
            maps = part_maps(self.task.class_map)
            datasets = [d for d in datasets if wanted & set(maps.get(d, {}).values())]
        return [
            (d, ensure_model_folder(d, home=self.options.home, download=self.options.download,
                                    reporter=self._download_reporter))
            for d in datasets
        ]  # fmt: skip

    def _local_labels(self, dataset_id: int | None, model: Any) -> dict[int, str]:
        if self.task is None:
            return dict(model.dataset.class_names)
        maps = part_maps(self.task.class_map)
        if dataset_id in maps:
            if dict(model.dataset.class_names) != maps[dataset_id]:
                log.warning(
                    "labels of %s differ from the %s part map of dataset %s; merging by the "
                    "part map, as the reference tool does",
                    model.folder, self.task.class_map, dataset_id,
                )  # fmt: skip
            return dict(maps[dataset_id])
        # a single-model task: the model's labels are the global ids themselves
        return {i: n for i, n in class_map(self.task.class_map).items() if i < model.n_out}

    def _output_labels(self, roi_subset: Sequence[str] | None) -> dict[int, str]:
        if self.task is not None:
            labels = class_map(self.task.class_map)
            if roi_subset is None:
                return dict(labels)
            wanted = set(resolve_names(roi_subset, version=self.task.class_map))
            return {i: n for i, n in labels.items() if n in wanted}
        labels = dict(self.parts[0].local_labels)
        if roi_subset is None:
            return labels
        return {i: n for i, n in labels.items() if n in set(_check_model_names(roi_subset, labels))}

    # -- per case -----------------------------------------------------------------------------

    def __call__(self, image_or_path: ImageSource) -> LabelMap:
        """Segment one case; the result is on the exact input grid with `labels` = {id: name}."""
        image, where = _read(image_or_path, series_uid=self.options.series_uid)
        check_finite(image, where=where)
        if self.task is None:
            array = self._run_nnunet(image)
        elif self._cropper is not None:
            array = self._run_cropped(image, self._cropper)
        else:
            array = self._run_task(image)
        if len(self.labels) < len(self._all_labels()):
            array = keep_labels(array, list(self.labels))
        return LabelMap(array, image.affine, self.labels)

    def _all_labels(self) -> Mapping[int, str]:
        if self.task is not None:
            return class_map(self.task.class_map)
        return self.parts[0].local_labels

    def _run_task(self, image: Image) -> np.ndarray:
        assert self.task is not None
        model_image, grid = to_model_grid(
            image, self.task.spacing_mm, order=self.options.resampling_order
        )
        array_kji, spacing_kji = to_array_order(
            np.asarray(model_image.array), header_spacing(model_image.affine)
        )
        global_labels = class_map(self.task.class_map)
        merged = empty_merge(model_image.shape, global_labels)
        keys = [_preprocessing_key(p.predictor.model.plan) for p in self.parts]
        cache: dict[Any, Any] = {}
        for index, (part, key) in enumerate(zip(self.parts, keys, strict=True)):
            if key not in cache:  # parts with the same preprocessing share one array
                plan = part.predictor.model.plan
                cache[key] = preprocess_case(array_kji[None], spacing_kji, plan)
            labels = self._predict(index, part, *cache[key])
            if key not in keys[index + 1 :]:
                del cache[key]
            merge_into(merged, from_array_order(labels), part.local_labels, global_labels)
        lowres = LabelMap(merged, model_image.affine, self.labels)
        return np.asarray(restore_labels(lowres, grid).array)

    def _run_cropped(self, image: Image, cropper: Segmenter) -> np.ndarray:
        """The task on the box of the crop structures (the task's own, else the roi_subset)
        found by the low-res `cropper`."""
        rough = cropper(image)
        wanted = set(self._crop_names)
        mask = np.isin(rough.array, [i for i, n in rough.labels.items() if n in wanted])
        out = np.zeros(image.shape, dtype=np.uint8)
        if not mask.any():
            log.info("the crop model found none of %s", sorted(wanted))
            return out
        margin = (self._crop_margin_mm / np.asarray(image.spacing_mm)).astype(int)
        box = box_of_mask(mask)
        box = CropBox(
            tuple(max(0, a - m) for a, m in zip(box.starts, margin, strict=True)),
            tuple(min(s, b + m) for b, m, s in zip(box.stops, margin, image.shape, strict=True)),
            image.shape,
        )
        data = np.asarray(image.array)[box.slices]
        affine = image.affine.copy()
        affine[:3, 3] = (image.affine @ np.array([*box.starts, 1.0]))[:3]
        cropped = Image(data.astype(np.int32) if data.dtype.kind == "f" else data, affine)
        out[box.slices] = self._run_task(cropped)
        return out

    def _run_nnunet(self, image: Image) -> np.ndarray:
        part = self.parts[0]
        plan = part.predictor.model.plan
        reorient = plan.image_reader_writer == "NibabelIOWithReorient"
        source, record = to_canonical(image) if reorient else (image, None)
        array_kji, spacing_kji = to_array_order(
            np.asarray(source.array), header_spacing(source.affine)
        )
        data, geometry = preprocess_case(array_kji[None], spacing_kji, plan)
        labels = from_array_order(self._predict(0, part, data, geometry))
        if record is None:
            return np.ascontiguousarray(labels)
        restored = restore(LabelMap(np.ascontiguousarray(labels), source.affine), record)
        return np.asarray(restored.array)

    def _predict(self, index: int, part: _Part, data: np.ndarray, geometry: Any) -> np.ndarray:
        callback = None
        if self.progress is not None:
            progress, n_parts = self.progress, len(self.parts)

            def callback(done: int, total: int) -> None:
                progress(SegmentProgress(index + 1, n_parts, part.name, done, total))

        logits = part.predictor.predict_logits(data, progress=callback)
        return export_labels(logits.numpy(), geometry, part.predictor.model.plan)


def _model_name(folder: Path) -> str:
    return folder.parent.name if folder.parent.name.startswith("Dataset") else folder.name


def _preprocessing_key(plan: Any) -> tuple[Any, ...]:
    return (
        plan.transpose_forward, plan.spacing_mm, plan.normalization_schemes,
        plan.use_mask_for_norm, plan.intensity_properties, plan.resampling_data.fn_name,
        tuple(sorted((k, repr(v)) for k, v in plan.resampling_data.kwargs.items())),
    )  # fmt: skip


def _get_task(name: str) -> Any:
    from totalseg.models.tasks import get_task

    return get_task(name)


def _check_model_names(names: Sequence[str], labels: Mapping[int, str]) -> list[str]:
    known = list(labels.values())
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownStructureError(
                f"Unknown structure {name!r} for this model (its dataset.json labels: "
                f"{', '.join(known[:8])}{', ...' if len(known) > 8 else ''}).{hint}"
            )
    return list(names)


def segment(
    image_or_path: ImageSource, *, options: SegmentOptions | None = None, **fields: Any
) -> LabelMap:
    """Segment one CT (an `Image` or a NIfTI/DICOM path) with a task or a model folder.

    `options` and/or any `SegmentOptions` field as a keyword, e.g.
    `segment("ct.nii.gz", task="total-fast", roi_subset=["liver"])`. For several cases build a
    `Segmenter` once and call it per case (models stay loaded).
    """
    return Segmenter(options=options, **fields)(image_or_path)
