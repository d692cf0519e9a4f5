"""Named model sets ("tasks") and the official weight archives, read from package data.

Torch-free: `totalseg info tasks` and the weights commands use it.

- `data/tasks.json`: each task names the datasets (model folders) it runs, in merge order, with
  the reference tool's semantics: target spacing (one number, [x, y, z], or null = the input's
  own spacing, nnU-Net resampling to its plan), tile step, folds, and an optional crop (run a
  low-res task first and crop to the box of some of its structures plus a margin).
- `data/weights.json`: each dataset id names its installed folder
  (`<home>/weights/<folder>/<model>/`, the reference tool's layout, e.g.
  `Dataset291_TotalSegmentator_part1_organs_1559subj/nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres`),
  its release URL and the pinned sha256 of the zip (null where unknown).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Set
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import PurePosixPath
from typing import Any, Literal

from totalseg.errors import ConfigError

WeightsFormat = Literal["nnunet_v2", "nnunet_v1", "bundled"]

_TASK_KEYS = {
    "description", "class_map", "spacing_mm", "datasets", "trainer", "tile_step", "roi_crop_task"
}  # fmt: skip
_OPTIONAL_TASK_KEYS = {"crop", "folds"}
_CROP_KEYS = {"task", "structures", "margin_mm"}

#: target spacing: isotropic mm, (x, y, z) mm, or None (keep the input's spacing)
Spacing = float | tuple[float, float, float] | None


@dataclass(frozen=True)
class CropSpec:
    """Crop the input to the box of `structures` found by the low-res `task` (+ `margin_mm` per
    side) before the task's own model runs (the reference tool's `crop` tasks)."""

    task: str
    structures: tuple[str, ...]
    margin_mm: float

    def __post_init__(self) -> None:
        if not self.structures or self.margin_mm < 0:
            raise ConfigError(
                f"Expected crop structures and margin_mm >= 0, got {self.structures} and "
                f"{self.margin_mm} (crop task {self.task!r})."
            )


_WEIGHTS_KEYS = {"folder", "model", "format", "url", "sha256", "size_bytes"}


@dataclass(frozen=True)
class TaskSpec:
    """A named model set: which datasets run, at which spacing, with which class map."""

    name: str
    description: str
    class_map: str  # "v1", "v2", or a class map of anatomy/data/class_maps.json
    spacing_mm: Spacing
    datasets: tuple[int, ...]
    trainer: str
    tile_step: float
    roi_crop_task: str | None = None  # low-res task whose masks crop the input for roi_subset
    crop: CropSpec | None = None  # always crop to these structures of a low-res task first
    folds: tuple[int | str, ...] | None = (0,)  # None: every fold the model folder holds

    def __post_init__(self) -> None:
        from totalseg.anatomy import class_map_names

        if self.class_map not in class_map_names():
            raise ConfigError(
                f"Expected class_map among {', '.join(class_map_names())}, got "
                f"{self.class_map!r} (task {self.name!r})."
            )
        if not self.datasets:
            raise ConfigError(f"Task {self.name!r} lists no datasets; add at least one.")
        if not 0.0 < self.tile_step <= 1.0:
            raise ConfigError(
                f"Expected tile_step in (0, 1], got {self.tile_step} (task {self.name!r})."
            )
        spacing = self.spacing_mm
        values = () if spacing is None else spacing if isinstance(spacing, tuple) else (spacing,)
        if any(not v > 0 for v in values) or len(values) not in (0, 1, 3):
            raise ConfigError(
                f"Expected spacing_mm > 0 (one number or x, y, z), got {self.spacing_mm} "
                f"({self.name!r})."
            )

    @property
    def spacing_text(self) -> str:
        """The target spacing for people: '1.5', '0.75x0.75x1' or 'native'."""
        if self.spacing_mm is None:
            return "native"
        if isinstance(self.spacing_mm, tuple):
            return "x".join(f"{v:.4g}" for v in self.spacing_mm)
        return f"{self.spacing_mm:g}"

    @property
    def weights(self) -> tuple[WeightsEntry, ...]:
        """The weight archive entry of each dataset, in task order."""
        return tuple(weights_entry(d) for d in self.datasets)


@dataclass(frozen=True)
class WeightsEntry:
    """One official weight archive: where it comes from and where it is installed."""

    dataset_id: int
    folder: str
    model: str
    format: WeightsFormat
    url: str
    sha256: str | None
    size_bytes: int | None

    @property
    def relpath(self) -> PurePosixPath:
        """Model folder relative to `<home>/weights`, e.g. `Dataset291_.../nnUNetTrainer...`."""
        return PurePosixPath(self.folder) / self.model

    @property
    def trainer(self) -> str:
        return self.model.split("__")[0]


def _load_json(name: str) -> Any:
    path = resources.files("totalseg.models").joinpath(f"data/{name}")
    with path.open("r", encoding="utf-8") as f:
        return json.load(f)


def _check_keys(
    entry: dict[str, Any], allowed: Set[str], where: str, optional: Set[str] = frozenset()
) -> None:
    unknown = set(entry) - allowed - optional
    missing = allowed - set(entry)
    if unknown or missing:
        raise ConfigError(
            f"Expected keys {sorted(allowed)} in {where}, got unknown {sorted(unknown)} and "
            f"missing {sorted(missing)}; fix the package data file."
        )


@cache
def _tasks() -> dict[str, TaskSpec]:
    raw = _load_json("tasks.json")
    out: dict[str, TaskSpec] = {}
    for name, entry in raw.items():
        where = f"tasks.json entry {name!r}"
        _check_keys(entry, _TASK_KEYS, where, _OPTIONAL_TASK_KEYS)
        crop = entry.get("crop")
        if crop is not None:
            _check_keys(crop, _CROP_KEYS, f"{where} (crop)")
        folds = entry.get("folds", [0])
        out[name] = TaskSpec(
            name=name,
            description=str(entry["description"]),
            class_map=str(entry["class_map"]),
            spacing_mm=_spacing(entry["spacing_mm"]),
            datasets=tuple(int(d) for d in entry["datasets"]),
            trainer=str(entry["trainer"]),
            tile_step=float(entry["tile_step"]),
            roi_crop_task=entry["roi_crop_task"],
            crop=None if crop is None else CropSpec(
                str(crop["task"]), tuple(map(str, crop["structures"])), float(crop["margin_mm"])
            ),
            folds=None if folds is None else tuple(folds),
        )  # fmt: skip
    named = {t.roi_crop_task for t in out.values() if t.roi_crop_task}
    unknown = (named | {t.crop.task for t in out.values() if t.crop}) - set(out)
    if unknown:
        raise ConfigError(f"tasks.json names unknown roi_crop_task(s) {sorted(unknown)}.")
    return out


@cache
def _weights() -> dict[int, WeightsEntry]:
    raw = _load_json("weights.json")["datasets"]
    out: dict[int, WeightsEntry] = {}
    for key, entry in raw.items():
        _check_keys(entry, _WEIGHTS_KEYS, f"weights.json entry {key!r}")
        if entry["format"] not in ("nnunet_v2", "nnunet_v1", "bundled"):
            raise ConfigError(f"Unknown weights format {entry['format']!r} for dataset {key}.")
        out[int(key)] = WeightsEntry(
            dataset_id=int(key),
            folder=str(entry["folder"]),
            model=str(entry["model"]),
            format=entry["format"],
            url=str(entry["url"]),
            sha256=None if entry["sha256"] is None else str(entry["sha256"]).lower(),
            size_bytes=None if entry["size_bytes"] is None else int(entry["size_bytes"]),
        )
    return out


def _spacing(value: Any) -> Spacing:
    if value is None:
        return None
    if isinstance(value, list):
        x, y, z = (float(v) for v in value)
        return (x, y, z)
    return float(value)


def list_tasks() -> tuple[TaskSpec, ...]:
    """Every named task, in the order of `data/tasks.json`."""
    return tuple(_tasks().values())


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; unknown names get a "did you mean"."""
    tasks = _tasks()
    if name in tasks:
        return tasks[name]
    close = difflib.get_close_matches(name, list(tasks), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(
        f"Unknown task {name!r}.{hint} Known tasks: {', '.join(tasks)} "
        "(list them with `totalseg info tasks`)."
    )


def list_weights() -> tuple[WeightsEntry, ...]:
    """Every known official weight archive, by dataset id."""
    return tuple(_weights()[k] for k in sorted(_weights()))


def weights_entry(dataset_id: int) -> WeightsEntry:
    """The official weight archive of a dataset id (e.g. 291)."""
    entries = _weights()
    if dataset_id in entries:
        return entries[dataset_id]
    raise ConfigError(
        f"No official weights are known for dataset {dataset_id}; known ids: "
        f"{', '.join(str(k) for k in sorted(entries))}. Import your own model folder with "
        "`totalseg weights import ZIP_OR_DIR` or pass --model-dir."
    )


def model_folder_name(dataset_id: int) -> PurePosixPath:
    """Expected model folder of a dataset id, relative to `<home>/weights`."""
    return weights_entry(dataset_id).relpath
