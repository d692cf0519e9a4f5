"""Preprocessing cache: each case canonical, resampled, labelled, with intensity samples.

Per case (one compressed ``.npz``, written atomically):
- ``image``: CT in HU on the target grid, **nnU-Net array order** (the canonical RAS array
  transposed to (k, j, i), spacing reversed), int16 when the source is integer (HU are integers;
  the cubic resampling result is rounded) else float32. The image is resampled with nnU-Net's
  resampling (order 3, separate-z rule) so training sees what inference will; normalisation is
  applied later, with the plan's statistics (nnU-Net normalises before resampling; the
  difference is confined to the clipping boundaries).
- ``labels``: the label map in the chosen id space, nearest-neighbour resampled
  (pixel-centre aligned, like skimage's resize grid).
- ``fg_sample``: up to 10 000 HU values of labelled voxels at the original resolution
  (seeded by the case id), for the CT normalisation statistics.
- ``class_locations``: up to 1 000 voxel coordinates per present class on the target grid
  (for foreground oversampling), stacked as rows ``(class, z, y, x)``.
- ``meta``: JSON (case id, spacing, shapes, present classes, keys).

Entries are keyed by a hash of the input files (paths, sizes, mtimes), the target spacing, the
class list and `CACHE_VERSION`; an entry whose inputs changed is rebuilt and the stale file of
the same configuration removed. Cases are built in parallel processes (`jobs`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.errors import InputError
from totalseg.training.dataset import TrainingCase, TrainingDataset

__all__ = [
    "CACHE_VERSION",
    "CachedCase",
    "build_cache",
    "default_cache_dir",
    "load_cached_case",
    "median_spacing_mm",
]

log = logging.getLogger(__name__)

CACHE_VERSION = "1"
N_FG_SAMPLES = 10_000
N_CLASS_LOCATIONS = 1_000
ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class CachedCase:
    """Where a preprocessed case lives and what the planner needs to know about it."""

    case_id: str
    split: str
    path: Path
    shape: tuple[int, int, int]  # nnU-Net array order (z, y, x) on the target grid
    spacing: tuple[float, float, float]  # target spacing, nnU-Net array order
    original_spacing: tuple[float, float, float]  # canonical source spacing, array order
    present_classes: tuple[int, ...]


def default_cache_dir() -> Path:
    """``$TOTALSEG_HOME/cache/training``, else the platform's user cache folder."""
    home = os.environ.get("TOTALSEG_HOME")
    if home:
        return Path(home) / "cache" / "training"
    import platformdirs

    return Path(platformdirs.user_cache_dir("totalseg")) / "training"


def _canonical_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    from nibabel.orientations import io_orientation

    from totalseg.image import spacing_from_affine

    spacing = spacing_from_affine(affine)
    out = [0.0, 0.0, 0.0]
    for axis, (target, _flip) in enumerate(io_orientation(affine)):
        out[int(target)] = spacing[axis]
    return (out[0], out[1], out[2])


def median_spacing_mm(dataset: TrainingDataset) -> tuple[float, float, float]:
    """Median canonical (x, y, z) spacing of the training cases, from the headers only."""
    from totalseg.io.nifti import read_header

    cases = dataset.split("train") or dataset.cases
    spacings = [_canonical_spacing(read_header(c.image_path).get_best_affine()) for c in cases]
    med = np.median(np.asarray(spacings, dtype=np.float64), axis=0)
    return (float(med[0]), float(med[1]), float(med[2]))


def _input_key(case: TrainingCase) -> str:
    parts = []
    for p in case.input_files():
        st = p.stat()
        parts.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _config_key(spacing_mm: Sequence[float], classes: Mapping[int, str]) -> str:
    doc = {
        "spacing_mm": [round(float(s), 6) for s in spacing_mm],
        "classes": sorted((int(k), v) for k, v in classes.items()),
        "version": CACHE_VERSION,
    }
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:12]


def _nearest_resize(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest neighbour, pixel-centre aligned: index floor((i + 0.5) * old/new), per axis."""
    out = array
    for axis, size in enumerate(shape):
        old = out.shape[axis]
        if old == size:
            continue
        index = np.floor((np.arange(size) + 0.5) * (old / size)).astype(np.int64)
        out = np.take(out, np.clip(index, 0, old - 1), axis=axis)
    return np.ascontiguousarray(out)


def _seed(case_id: str) -> int:
    return zlib.crc32(case_id.encode())


def _class_locations(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = []
    for value in np.unique(labels):
        if value == 0:
            continue
        coords = np.argwhere(labels == value)
        if len(coords) > N_CLASS_LOCATIONS:
            coords = coords[rng.choice(len(coords), N_CLASS_LOCATIONS, replace=False)]
        rows.append(np.concatenate([np.full((len(coords), 1), value), coords], axis=1))
    if not rows:
        return np.zeros((0, 4), dtype=np.int32)
    return np.concatenate(rows).astype(np.int32)


def _preprocess_case(
    dataset: TrainingDataset,
    case: TrainingCase,
    classes: Mapping[int, str],
    spacing_mm: Sequence[float],
) -> dict[str, Any]:
    """Read, reorient, sample foreground, resample: the arrays of one cache entry."""
    from totalseg.io.nifti import read_image
    from totalseg.preprocess.orientation import to_canonical
    from totalseg.preprocess.resample import nnunet_new_shape, resample_to_shape
    from totalseg.training.dataset import read_case_labels

    image = read_image(case.image_path)
    labels = read_case_labels(dataset, case, classes)
    image.check_same_grid(labels, what=f"ground truth of case {case.case_id}")
    image, _ = to_canonical(image)
    labels, _ = to_canonical(labels)
    img = np.asarray(image.array).transpose(2, 1, 0)
    lab = np.asarray(labels.array).transpose(2, 1, 0)
    spacing = tuple(reversed(image.spacing_mm))
    target = tuple(float(s) for s in reversed(tuple(spacing_mm)))
    fg = img[lab > 0]
    rng = np.random.default_rng(_seed(case.case_id))
    if len(fg) > N_FG_SAMPLES:
        fg = fg[rng.choice(len(fg), N_FG_SAMPLES, replace=False)]
    new_shape = nnunet_new_shape(img.shape, spacing, target)
    data = resample_to_shape(
        img[None].astype(np.float32), new_shape, spacing=spacing, new_spacing=target
    )[0]
    if img.dtype.kind in "iu" and data.size and data.min() >= -32768 and data.max() <= 32767:
        data = np.round(data).astype(np.int16)
    lab = _nearest_resize(lab, new_shape)
    return {
        "image": np.ascontiguousarray(data),
        "labels": lab,
        "fg_sample": fg.astype(np.float32),
        "class_locations": _class_locations(lab, _seed(case.case_id)),
        "original_spacing": spacing,
        "spacing": target,
    }


def _write_entry(path: Path, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _build_one(
    dataset: TrainingDataset,
    case: TrainingCase,
    classes: Mapping[int, str],
    spacing_mm: tuple[float, float, float],
    path: Path,
) -> dict[str, Any]:
    out = _preprocess_case(dataset, case, classes, spacing_mm)
    lab = out["labels"]
    meta = {
        "case_id": case.case_id,
        "shape": [int(s) for s in lab.shape],
        "spacing": [float(s) for s in out["spacing"]],
        "original_spacing": [float(s) for s in out["original_spacing"]],
        "present_classes": [int(v) for v in np.unique(lab) if v != 0],
        "version": CACHE_VERSION,
    }
    arrays = {k: out[k] for k in ("image", "labels", "fg_sample", "class_locations")}
    _write_entry(path, arrays, meta)
    return meta


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path) as z:
            return dict(json.loads(str(z["meta"])))
    except (OSError, ValueError, KeyError, zlib.error, EOFError) as exc:
        log.warning("Cache entry '%s' is unreadable (%s); rebuilding it.", path, exc)
        return None


def _entry_path(cache_dir: Path, case: TrainingCase, config_key: str) -> Path:
    return cache_dir / f"{case.case_id}__{config_key}_{_input_key(case)}.npz"


def _drop_stale(cache_dir: Path, case: TrainingCase, config_key: str, keep: Path) -> None:
    for old in cache_dir.glob(f"{case.case_id}__{config_key}_*.npz"):
        if old != keep:
            log.info("Removing stale cache entry '%s' (inputs changed).", old.name)
            old.unlink(missing_ok=True)


def build_cache(
    dataset: TrainingDataset,
    *,
    classes: Mapping[int, str],
    spacing_mm: float | Sequence[float],
    cache_dir: str | Path | None = None,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
) -> list[CachedCase]:
    """Preprocess every case of `dataset` (reusing valid entries); return them in case order.

    `spacing_mm` is the target spacing in canonical (x, y, z) order, or one number.
    """
    target = tuple(float(s) for s in np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,)))
    if any(not np.isfinite(s) or s <= 0 for s in target):
        raise InputError(f"Expected positive target spacings in mm, got {target}.")
    if not classes:
        raise InputError("Expected at least one class to train on, got none.")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    ckey = _config_key(target, classes)
    paths = {c.case_id: _entry_path(root, c, ckey) for c in dataset.cases}
    metas: dict[str, dict[str, Any]] = {}
    todo = []
    for case in dataset.cases:
        meta = _read_meta(paths[case.case_id]) if paths[case.case_id].is_file() else None
        if meta is not None:
            metas[case.case_id] = meta
        else:
            todo.append(case)
    log.info("Cache '%s': %d cases reused, %d to build.", root, len(metas), len(todo))
    done = len(metas)
    t3 = (target[0], target[1], target[2])
    if jobs <= 1 or len(todo) <= 1:
        for case in todo:
            metas[case.case_id] = _build_one(dataset, case, classes, t3, paths[case.case_id])
            done += 1
            if progress is not None:
                progress(done, len(dataset.cases), case.case_id)
    else:
        # spawn: forking a process that already runs torch/OpenMP threads can deadlock
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {
                c.case_id: pool.submit(_build_one, dataset, c, dict(classes), t3, paths[c.case_id])
                for c in todo
            }
            for cid, fut in futures.items():
                metas[cid] = fut.result()
                done += 1
                if progress is not None:
                    progress(done, len(dataset.cases), cid)
    for case in dataset.cases:
        _drop_stale(root, case, ckey, paths[case.case_id])
    return [_cached(case, paths[case.case_id], metas[case.case_id]) for case in dataset.cases]


def _cached(case: TrainingCase, path: Path, meta: Mapping[str, Any]) -> CachedCase:
    s, sp, osp = meta["shape"], meta["spacing"], meta["original_spacing"]
    return CachedCase(
        case_id=case.case_id,
        split=case.split,
        path=path,
        shape=(int(s[0]), int(s[1]), int(s[2])),
        spacing=(float(sp[0]), float(sp[1]), float(sp[2])),
        original_spacing=(float(osp[0]), float(osp[1]), float(osp[2])),
        present_classes=tuple(int(v) for v in meta["present_classes"]),
    )


def load_cached_case(
    case: CachedCase, *, keys: Sequence[str] = ("image", "labels", "class_locations")
) -> dict[str, np.ndarray]:
    """The arrays of one cache entry (only `keys` are decompressed)."""
    try:
        with np.load(case.path) as z:
            return {k: np.asarray(z[k]) for k in keys}
    except (OSError, KeyError, ValueError, zlib.error, EOFError) as exc:
        raise InputError(
            f"Expected a readable cache entry for case {case.case_id}, got '{case.path}' which "
            f"failed ({exc}); delete it and rerun to rebuild."
        ) from None
