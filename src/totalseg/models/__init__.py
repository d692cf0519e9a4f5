"""Model folders (nnU-Net v2 layout; nnU-Net 1 in `models.v1`), typed plans, U-Nets, named
model sets and the weights home.

Importing this package does not import torch: the torch-free parts (tasks, plans, weights
home) are imported eagerly; the torch parts (checkpoint loading, networks, folder reading and
writing) are re-exported lazily on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

from totalseg.models.arch import ArchitectureSpec
from totalseg.models.plan import (
    DatasetInfo,
    IntensityProperties,
    Plan,
    ResamplingSpec,
    read_dataset_json,
    read_plan,
)
from totalseg.models.release import download_weights, ensure_model_folder
from totalseg.models.tasks import TaskSpec, WeightsEntry, get_task, list_tasks, weights_entry
from totalseg.models.weights import (
    find_model_folder,
    import_weights,
    list_installed,
    weights_home,
)

_LAZY = {
    "load_checkpoint": "totalseg.models.checkpoint",
    "LoadedModel": "totalseg.models.folder",
    "load_model": "totalseg.models.folder",
    "load_model_folder": "totalseg.models.folder",
    "load_v1_model_folder": "totalseg.models.v1.folder",
    "PlainConvUNet": "totalseg.models.unet",
    "ResidualEncoderUNet": "totalseg.models.unet",
    "build_network": "totalseg.models.unet",
    "write_model_folder": "totalseg.models.writer",
    "random_model_folder": "totalseg.models.writer",
    "make_plans": "totalseg.models.writer",
    "make_dataset_json": "totalseg.models.writer",
}

__all__ = [
    "ArchitectureSpec",
    "DatasetInfo",
    "IntensityProperties",
    "Plan",
    "ResamplingSpec",
    "TaskSpec",
    "WeightsEntry",
    "download_weights",
    "ensure_model_folder",
    "find_model_folder",
    "get_task",
    "import_weights",
    "list_installed",
    "list_tasks",
    "read_dataset_json",
    "read_plan",
    "weights_entry",
    "weights_home",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'totalseg.models' has no attribute {name!r}")
