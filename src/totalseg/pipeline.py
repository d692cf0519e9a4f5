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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.anatomy import class_map, part_maps, relabel, resolve_names
from totalseg.errors import ConfigError, InputError, UnknownStructureError
from totalseg.image import Image, LabelMap
from totalseg.inference.nnunet import (
    from_array_order,
    header_spacing,
    mask_to_network_grid,
    preprocess_case,
    to_array_order,
)
from totalseg.options import SegmentOptions
from totalseg.postprocess.blobs import remove_small_blobs
from totalseg.postprocess.merge import empty_merge, keep_labels, merge_into
from totalseg.postprocess.restore import restore_labels, to_model_grid, zoom_canonical
from totalseg.preprocess.body import body_mask, crop_to_body
from totalseg.preprocess.crop import CropBox, box_of_mask
from totalseg.preprocess.orientation import restore, to_canonical
from totalseg.timings import PartTimes, StageTimes, Stopwatch

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
        #: (dataset id or None, model folder) of every part run, in order (for run reports)
        self.model_folders = list(folders)
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
            if model.format == "nnunet_v1":  # nnU-Net 1's own pipeline (inference.v1)
                from totalseg.inference.v1 import V1Predictor

                predictor: Any = V1Predictor(model, inference)
            else:
                predictor = Predictor(model, inference)
            self.parts.append(
                _Part(_model_name(folder), predictor, self._local_labels(dataset_id, model))
            )
        self._v1 = bool(self.parts) and all(
            p.predictor.model.format == "nnunet_v1" for p in self.parts
        )
        self._labels = self._output_labels(opts.roi_subset)  # ids of the task's class map
        #: {id: name} of the result (v1 ids with `v1_order`)
        self.labels = self._v1_labels() if opts.v1_order else dict(self._labels)
        self._cropper: Segmenter | None = None
        self._crop_names: tuple[str, ...] = tuple(self._labels.values())
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
                crop_task, options=opts.for_crop_model(), progress=progress,
                download_reporter=download_reporter,
            )  # fmt: skip
        if self._cropper is not None:
            self.model_folders = self._cropper.model_folders + self.model_folders
        self._check_output_grid()
        if opts.body_seg and self._cropper is not None:
            log.info("body_seg ignored: the input is cropped to %s already", crop_task)

    @property
    def expects_ct(self) -> bool:
        """True when every part normalises its input as CT (nnU-Net's CTNormalization), so
        the CT plausibility check applies to what it is given."""
        return all(
            list(p.predictor.model.plan.normalization_schemes)[:1] == ["CTNormalization"]
            for p in self.parts
        )

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

    def _v1_labels(self) -> dict[int, str]:
        """The result's labels in the paper's v1 ids (structures v1 lacks are dropped)."""
        if self.task is None or self.task.class_map not in ("v1", "v2"):
            where = "a model folder" if self.task is None else f"task {self.task.name!r}"
            raise ConfigError(
                f"Expected a task of the total class maps (v1/v2) with v1_order, got {where}; "
                "drop --v1-order."
            )
        names = set(self._labels.values())
        return {i: n for i, n in class_map("v1").items() if n in names}

    def _check_output_grid(self) -> None:
        """`save_lowres` needs a named task with a spacing and no crop (as the reference)."""
        opts = self.options
        if not opts.save_lowres:
            return
        crop = self._cropper is not None or opts.body_seg
        if self.task is None or self.task.spacing_mm is None or crop:
            why = (
                "a model folder" if self.task is None
                else "a crop (roi_subset, the task's crop or body_seg)" if crop
                else f"task {self.task.name!r}, which runs at the input's own spacing"
            )  # fmt: skip
            raise ConfigError(
                f"Expected a named task with a fixed spacing and no crop with save_lowres, got "
                f"{why}; drop --save-lowres or the crop."
            )

    @property
    def device(self) -> str:
        """The torch device the models run on, e.g. 'cpu' or 'cuda:0'."""
        return str(self.parts[0].predictor.device)

    def output_image(self, image: Image) -> Image:
        """`image` on the grid of this segmenter's results: itself, or with `save_lowres` the
        model grid (for statistics and previews of a low-res result)."""
        if not self.options.save_lowres or self.task is None:
            return image
        model_image, _ = to_model_grid(
            image, self.task.spacing_mm, order=self.options.resampling_order,
            truncate_to_int32=False,
        )  # fmt: skip
        return model_image

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
        return self.run(image_or_path)[0]

    def run(self, image_or_path: ImageSource) -> tuple[LabelMap, StageTimes]:
        """Segment one case, and say where its time went (seconds per stage)."""
        watch = Stopwatch()
        with watch.stage("read_s"):
            image, where = _read(image_or_path, series_uid=self.options.series_uid)
            check_finite(image, where=where)
        if self.options.save_lowres:
            result = self._run_task(image, watch, lowres=True)
            array, affine = np.asarray(result.array), result.affine
        else:
            array, affine = self._run_on_body(image, watch), image.affine
        with watch.stage("restore_s"):
            if len(self._labels) < len(self._all_labels()):
                array = keep_labels(array, list(self._labels))
            if self.options.v1_order:
                array = relabel(array, self._labels, self.labels).astype(np.uint8)
        return LabelMap(array, affine, self.labels), watch.result()

    def _run(self, image: Image, watch: Stopwatch) -> np.ndarray:
        if self.task is None:
            return self._run_nnunet(image, watch)
        if self._cropper is not None:
            return self._run_cropped(image, self._cropper, watch)
        return np.asarray(self._run_task(image, watch).array)

    def _run_on_body(self, image: Image, watch: Stopwatch) -> np.ndarray:
        """`_run` on the box of the body (`body_seg`), pasted back into zeros."""
        if not self.options.body_seg or self._cropper is not None:
            return self._run(image, watch)
        with watch.stage("body_s"):
            cropped = crop_to_body(image)
        if cropped is None:
            log.info("body_seg: no voxel above -500 HU, an empty result")
            return np.zeros(image.shape, dtype=np.uint8)
        body, box = cropped
        log.info("body_seg: the body box is %s", [(s.start, s.stop) for s in box])
        labels = self._run(body, watch)
        out = np.zeros(image.shape, dtype=labels.dtype)
        out[box] = labels
        return out

    def _remove_blobs(self, array: np.ndarray, spacing_mm: Sequence[float]) -> np.ndarray:
        threshold = self.options.remove_small_blobs_mm3
        if threshold is None:
            return array
        return remove_small_blobs(array, spacing_mm=spacing_mm, min_volume_mm3=float(threshold))

    def _all_labels(self) -> Mapping[int, str]:
        if self.task is not None:
            return class_map(self.task.class_map)
        return self.parts[0].local_labels

    def _run_task(self, image: Image, watch: Stopwatch, *, lowres: bool = False) -> LabelMap:
        """The task on the whole image: on the input grid, or on the model grid (`lowres`)."""
        assert self.task is not None
        order, mode = self.options.resampling_order, "nearest"
        if self._v1:  # TotalSegmentator 1.5.x's zoom: order 3, scipy's default mode
            order, mode = 3, "constant"
        with watch.stage("orient_s"):
            canonical, reorientation = to_canonical(image)
        with watch.stage("resample_s"):
            model_image, grid = zoom_canonical(
                canonical, reorientation, self.task.spacing_mm, order=order, mode=mode
            )
        array_kji, spacing_kji = to_array_order(
            np.asarray(model_image.array), header_spacing(model_image.affine)
        )
        body = self._body(array_kji, spacing_kji, watch)
        global_labels = class_map(self.task.class_map)
        merged = empty_merge(model_image.shape, global_labels)
        keys = [_preprocessing_key(p.predictor.model.plan) for p in self.parts]
        cache: dict[Any, Any] = {}
        for index, (part, key) in enumerate(zip(self.parts, keys, strict=True)):
            if key not in cache:  # parts with the same preprocessing share one array
                with watch.stage("normalise_s"):
                    cache[key] = self._preprocess(part, array_kji, spacing_kji, body)
            labels = self._predict(index, part, *cache[key], watch=watch)
            if key not in keys[index + 1 :]:
                del cache[key]
            with watch.stage("merge_s"):
                merge_into(merged, from_array_order(labels), part.local_labels, global_labels)
        merged = self._remove_blobs(merged, model_image.spacing_mm)
        on_model_grid = LabelMap(merged, model_image.affine, self._labels)
        if lowres:
            return on_model_grid
        with watch.stage("restore_s"):
            return restore_labels(on_model_grid, grid)

    def _body(
        self, array_kji: np.ndarray, spacing_kji: Sequence[float], watch: Stopwatch
    ) -> np.ndarray | None:
        """The body mask of the case (array order) when tiles outside it are skipped."""
        if not self.options.skips_outside_body:
            return None
        with watch.stage("body_s"):
            return body_mask(array_kji, spacing_kji)

    @staticmethod
    def _preprocess(
        part: _Part, array_kji: np.ndarray, spacing_kji: Sequence[float], body: np.ndarray | None
    ) -> tuple[np.ndarray, Any, np.ndarray | None]:
        """nnU-Net 2's preprocessing (and the body mask on its grid), or nnU-Net 1's for a v1
        model folder (which runs every tile)."""
        if part.predictor.model.format == "nnunet_v1":
            data, geometry = part.predictor.preprocess(array_kji[None], spacing_kji)
            return data, geometry, None
        plan = part.predictor.model.plan
        data, geometry = preprocess_case(array_kji[None], spacing_kji, plan)
        grid_body = None if body is None else mask_to_network_grid(body, geometry, plan)
        return data, geometry, grid_body

    def _run_cropped(self, image: Image, cropper: Segmenter, watch: Stopwatch) -> np.ndarray:
        """The task on the box of the crop structures (the task's own, else the roi_subset)
        found by the low-res `cropper`."""
        rough, rough_times = cropper.run(image)
        watch.add(rough_times.with_stages(read_s=-rough_times.read_s))
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
        out[box.slices] = np.asarray(self._run_task(cropped, watch).array)
        return out

    def _run_nnunet(self, image: Image, watch: Stopwatch) -> np.ndarray:
        part = self.parts[0]
        plan = part.predictor.model.plan
        reorient = plan.image_reader_writer == "NibabelIOWithReorient"
        with watch.stage("orient_s"):
            source, record = to_canonical(image) if reorient else (image, None)
        array_kji, spacing_kji = to_array_order(
            np.asarray(source.array), header_spacing(source.affine)
        )
        body = self._body(array_kji, spacing_kji, watch)
        with watch.stage("normalise_s"):
            data, geometry, grid_body = self._preprocess(part, array_kji, spacing_kji, body)
        labels = from_array_order(self._predict(0, part, data, geometry, grid_body, watch=watch))
        labels = self._remove_blobs(np.ascontiguousarray(labels), source.spacing_mm)
        if record is None:
            return labels
        with watch.stage("restore_s"):
            restored = restore(LabelMap(labels, source.affine), record)
            return np.asarray(restored.array)

    def _predict(
        self,
        index: int,
        part: _Part,
        data: np.ndarray,
        geometry: Any,
        body: np.ndarray | None,
        *,
        watch: Stopwatch,
    ) -> np.ndarray:
        from totalseg.inference.predictor import labels_from_logits
        from totalseg.inference.sliding_window import WindowStats

        callback = None
        if self.progress is not None:
            progress, n_parts = self.progress, len(self.parts)

            def callback(done: int, total: int) -> None:
                progress(SegmentProgress(index + 1, n_parts, part.name, done, total))

        if part.predictor.model.format == "nnunet_v1":  # tasks: TotalSegmentator 1.x's mode
            mode = "fastest" if self.task is not None else "normal"
            started = time.perf_counter()
            labels = part.predictor.predict_labels(data, geometry, mode=mode, progress=callback)
            watch.add_part(PartTimes(part.name, time.perf_counter() - started, 0.0, 0.0, 0, 0))
            return _v1_postprocess(labels, part.predictor.postprocessing, geometry)
        stats, predictor = WindowStats(), part.predictor
        logits = predictor.predict_logits(
            data, progress=callback, body=body, stats=stats, keep_on_device=predictor.resident
        )
        started = time.perf_counter()
        labels = labels_from_logits(
            logits, geometry, predictor.model.plan, on_device=predictor.resident
        )
        export_s = time.perf_counter() - started
        watch.add_part(
            PartTimes(
                part.name, stats.network_s, stats.accumulation_s, export_s,
                stats.n_tiles_run, stats.n_tiles_skipped,
            )
        )  # fmt: skip
        return labels


def _model_name(folder: Path) -> str:
    parent = folder.parent.name
    return parent if parent.startswith(("Dataset", "Task")) else folder.name


def _v1_postprocess(labels: np.ndarray, postprocessing: Any, geometry: Any) -> np.ndarray:
    """nnU-Net 1's postprocessing.json (largest components) on one part's labels, if any."""
    if postprocessing is None:
        return labels
    from totalseg.postprocess.largest_component import keep_largest_components

    classes, min_sizes = postprocessing
    volume = float(np.prod(geometry.original_spacing, dtype=np.float64))
    return keep_largest_components(
        labels, classes, voxel_volume_mm3=volume, min_valid_mm3=min_sizes
    )


def _preprocessing_key(plan: Any) -> tuple[Any, ...]:
    return (
        plan.preprocessor_name, plan.transpose_forward, plan.spacing_mm, plan.normalization_schemes,
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
