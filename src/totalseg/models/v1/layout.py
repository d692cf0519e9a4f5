"""The nnU-Net 1 model folder layout (torch-free; used by folder reading and weights import).

```
<...>/nnUNet/3d_fullres/TaskXXX_Name/<trainer>__<plans>/   (the release zips start at TaskXXX_Name)
    plans.pkl  [postprocessing.json]
    fold_0/model_final_checkpoint.model  fold_0/model_final_checkpoint.model.pkl
```
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from totalseg.errors import ModelError

__all__ = [
    "CHECKPOINT",
    "TASK_RE",
    "is_v1_model_folder",
    "read_postprocessing",
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


def read_postprocessing(
    folder: Path,
) -> tuple[list[Any], dict[Any, float] | None] | None:
    """`<folder>/postprocessing.json` as nnU-Net 1's `load_postprocessing` reads it:
    (`for_which_classes`, `min_valid_object_sizes` or None); None without the file. The sizes
    are a dict literal in a string, parsed with `ast.literal_eval` (literals only, no code)."""
    path = folder / "postprocessing.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        classes = [tuple(c) if isinstance(c, list) else int(c) for c in raw["for_which_classes"]]
        sizes = raw.get("min_valid_object_sizes")
        parsed = None if sizes is None else ast.literal_eval(sizes)
        if parsed is not None and not isinstance(parsed, dict):
            raise ValueError("min_valid_object_sizes is not a dict")
    except (OSError, ValueError, KeyError, TypeError, SyntaxError) as exc:
        raise ModelError(
            f"'{path}' is not nnU-Net 1 postprocessing ({type(exc).__name__}: {exc}); remove "
            "or re-import it."
        ) from None
    if parsed is not None:
        parsed = {tuple(k) if isinstance(k, list) else k: float(v) for k, v in parsed.items()}
    return classes, parsed
