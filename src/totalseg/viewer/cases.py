"""The cases a viewer shows, and the one case it holds in memory at a time.

A case is a CT and (optionally) its segmentation: a multilabel NIfTI or a folder of per-class
masks. `load_case` reads both, puts the labels on the CT grid and measures every structure with
`totalseg.stats` (or takes the measures a study stored). The browser gets the volumes as gzip
NIfTI, encoded lazily once per case; volumes of more than `PREVIEW_MAX_VOXELS` voxels also get a
strided preview the page shows first. `CaseCache` keeps at most one loaded case: opening another
drops the previous one before reading the next.
"""

from __future__ import annotations

import colorsys
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from totalseg.errors import InputError
from totalseg.image import Image, LabelMap

__all__ = [
    "PREVIEW_MAX_VOXELS",
    "CaseCache",
    "CaseSpec",
    "LoadedCase",
    "label_colour",
    "load_case",
    "preview_step",
    "structure_rows",
]

log = logging.getLogger(__name__)

#: Volumes larger than this also get a strided preview (about 8 M voxels) sent first.
PREVIEW_MAX_VOXELS = 24_000_000
_PREVIEW_TARGET_VOXELS = 8_000_000

VolumeKind = Literal["ct", "labels"]


@dataclass(frozen=True)
class CaseSpec:
    """Where one case's files are. `seg_path` None: the CT alone."""

    case_id: str
    ct_path: Path
    seg_path: Path | None = None

    def __post_init__(self) -> None:
        if not self.case_id:
            raise InputError("Expected a non-empty case id, got ''.")


def label_colour(label: int) -> tuple[int, int, int]:
    """A distinct, deterministic RGB colour (0-255) for a label value (golden-angle hues)."""
    hue = (label * 0.6180339887) % 1.0
    saturation = (0.85, 0.6, 0.95)[label % 3]
    value = (1.0, 0.85)[(label // 3) % 2]
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def structure_rows(
    records: Sequence[Mapping[str, Any]], flags: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """JSON-ready structure rows (name, label, colour, status, flag, volume_ml, mean_hu,
    centroid_mm, n_voxels) from statistics records (`totalseg.stats.RECORD_COLUMNS`)."""
    rows = []
    for r in sorted(records, key=lambda rec: int(rec["label"])):
        label = int(r["label"])
        centroid = [_finite(r.get(f"centroid_{a}_mm")) for a in "xyz"]
        rows.append(
            {
                "name": str(r["structure"]),
                "label": label,
                "colour": label_colour(label),
                "status": str(r["status"]),
                "flag": (flags or {}).get(str(r["structure"]), ""),
                "n_voxels": int(r["n_voxels"] or 0),
                "volume_ml": _finite(r.get("volume_ml")),
                "mean_hu": _finite(r.get("mean_hu")),
                "centroid_mm": None if None in centroid else centroid,
            }
        )
    return rows


def preview_step(shape: Sequence[int], *, max_voxels: int = PREVIEW_MAX_VOXELS) -> int:
    """Stride of the preview of a volume of `shape`: 1 (no preview) up to `max_voxels`."""
    n = math.prod(shape)
    if n <= max_voxels:
        return 1
    return max(2, math.ceil((n / _PREVIEW_TARGET_VOXELS) ** (1 / 3)))


def _strided(volume: Image | LabelMap, step: int) -> Image | LabelMap:
    array = np.ascontiguousarray(np.asarray(volume.array)[::step, ::step, ::step])
    affine = np.asarray(volume.affine) @ np.diag([step, step, step, 1.0])
    if isinstance(volume, LabelMap):
        return LabelMap(array, affine, volume.labels)
    return Image(array, affine)


def _display_image(image: Image) -> Image:
    """The CT as int16 when its values are whole HU numbers in range (half the bytes)."""
    a = np.asarray(image.array)
    if a.dtype == np.int16 or a.dtype.kind not in "iuf" or a.size == 0:
        return image
    lo, hi = float(a.min()), float(a.max())
    if lo < -32768 or hi > 32767:
        return image
    if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
        return Image(a.astype(np.float32, copy=False), image.affine)
    return Image(a.astype(np.int16), image.affine)


@dataclass(eq=False)
class LoadedCase:
    """One case in memory: its volumes, structure rows, and the encoded files sent so far."""

    case_id: str
    image: Image
    label_map: LabelMap | None
    structures: list[dict[str, Any]]
    step: int = 1  # stride of the preview; 1: none
    _encoded: dict[tuple[VolumeKind, bool], bytes] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def info(self) -> dict[str, Any]:
        """What the page needs before it loads the volumes."""
        return {
            "case_id": self.case_id,
            "shape": list(self.image.shape),
            "spacing_mm": [round(s, 4) for s in self.image.spacing_mm],
            "orientation": "".join(self.image.orientation),
            "preview_step": self.step,
            "has_labels": self.label_map is not None,
            "structures": self.structures,
        }

    def volume_gz(self, kind: VolumeKind, *, preview: bool = False) -> bytes:
        """The CT or the labels as .nii.gz bytes (the strided preview with `preview`)."""
        volume: Image | LabelMap | None = self.image if kind == "ct" else self.label_map
        if volume is None:
            raise KeyError(f"case {self.case_id!r} has no segmentation")
        with self._lock:
            key = (kind, preview and self.step > 1)
            if key not in self._encoded:
                from totalseg.io import encode_nifti

                if isinstance(volume, Image):
                    volume = _display_image(volume)
                if key[1]:
                    volume = _strided(volume, self.step)
                self._encoded[key] = encode_nifti(volume)
            return self._encoded[key]


def _read_labels(seg_path: Path, image: Image) -> LabelMap:
    from totalseg.preprocess.orientation import on_grid_of
    from totalseg.stats import read_segmentation

    label_map = on_grid_of(read_segmentation(seg_path), image)
    image.check_same_grid(label_map, what=f"segmentation '{seg_path}'")
    return label_map


def load_case(
    spec: CaseSpec,
    *,
    records: Sequence[Mapping[str, Any]] | None = None,
    flags: Mapping[str, str] | None = None,
    preview_max_voxels: int = PREVIEW_MAX_VOXELS,
) -> LoadedCase:
    """Read a case; measure its structures unless a study's `records` are given; volumes above
    `preview_max_voxels` voxels get a preview."""
    from totalseg.io import read_any
    from totalseg.stats import compute_statistics

    image = read_any(spec.ct_path)
    label_map = None if spec.seg_path is None else _read_labels(spec.seg_path, image)
    if records is None:
        records = [] if label_map is None else compute_statistics(image, label_map).to_records()
    log.info("loaded case %s: shape %s", spec.case_id, image.shape)
    step = preview_step(image.shape, max_voxels=preview_max_voxels)
    return LoadedCase(spec.case_id, image, label_map, structure_rows(records, flags), step)


class CaseCache:
    """Holds at most one loaded case; `get` loads (and replaces) it on demand, thread-safe."""

    def __init__(self, loader: Callable[[str], LoadedCase]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._case: LoadedCase | None = None

    def get(self, case_id: str) -> LoadedCase:
        with self._lock:
            if self._case is None or self._case.case_id != case_id:
                self._case = None  # release the previous case before reading the next
                self._case = self._loader(case_id)
            return self._case
