"""The nnU-Net 1 model folder layout (torch-free; used by folder reading and weights import).

```
<...>/nnUNet/3d_fullres/TaskXXX_Name/<trainer>__<plans>/   (the release zips start at TaskXXX_Name)
    plans.pkl  [postprocessing.json]
    fold_0/model_final_checkpoint.model  fold_0/model_final_checkpoint.model.pkl
```
"""

from __future__ import annotations

import re
from pathlib import Path

from totalseg.errors import ModelError

__all__ = [
    "CHECKPOINT",
    "TASK_RE",
    "is_v1_model_folder",
    "task_id_of",
    "v1_fold_names",
    "validate_v1_model_folder",
]

CHECKPOINT = "model_final_checkpoint"
TASK_RE = re.compile(r"^Task(\d{3,})_[^/\\]+$")


def is_v1_model_folder(path: Path) -> bool:
    """A folder with `plans.pkl` and no `plans.json`."""
    return (path / "plans.pkl").is_file() and not (path / "plans.json").is_file()


def v1_fold_names(path: Path, checkpoint: str = CHECKPOINT) -> tuple[str, ...]:
    """`fold_N` folders holding both checkpoint files, numeric ones first."""
    folds = [
        p.name
        for p in path.glob("fold_*")
        if (p / f"{checkpoint}.model").is_file() and (p / f"{checkpoint}.model.pkl").is_file()
    ]
    digits = sorted((n for n in folds if n[5:].isdigit()), key=lambda n: int(n[5:]))
    return tuple(digits + sorted(n for n in folds if not n[5:].isdigit()))


def task_id_of(path: Path) -> int | None:
    """The task id of a v1 model folder (its parent is `TaskXXX_Name`), or None."""
    match = TASK_RE.match(path.parent.name)
    return int(match.group(1)) if match else None


def validate_v1_model_folder(path: Path, rel: object) -> None:
    """plans.pkl readable with the safe unpickler and at least one complete fold."""
    from totalseg.models.v1.unpickle import read_v1_pickle

    if not v1_fold_names(path):
        raise ModelError(
            f"Incomplete nnU-Net 1 model folder '{rel}': missing fold_N/{CHECKPOINT}.model and "
            f"its .model.pkl; use the complete release zip."
        )
    plans = read_v1_pickle(path / "plans.pkl")
    if not isinstance(plans, dict) or "plans_per_stage" not in plans:
        raise ModelError(
            f"Expected nnU-Net 1 plans (a dict with 'plans_per_stage') in '{rel}/plans.pkl', got "
            f"{type(plans).__name__}; use the official model folder."
        )
