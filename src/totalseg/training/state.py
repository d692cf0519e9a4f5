"""Training checkpoints: everything needed to resume bit for bit, written atomically.

A checkpoint holds the network weights, optimizer and grad-scaler state, the number of completed
epochs, the RNG states (torch CPU and CUDA, the numpy Generator that draws the training data,
Python's `random`), the logs and the best-Dice EMA. It contains only tensors and plain Python
values, so it loads with ``torch.load(weights_only=True)``. It also carries the keys nnU-Net's
predictor reads (``network_weights``, ``init_args.configuration``, ``trainer_name``,
``inference_allowed_mirroring_axes`` = None).
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from totalseg.errors import ModelError

__all__ = [
    "TRAINER_NAME",
    "capture_rng",
    "load_training_state",
    "restore_rng",
    "save_training_state",
]

TRAINER_NAME = "nnUNetTrainerNoMirroring"
FORMAT = "totalseg-training-1"


def capture_rng(data_rng: np.random.Generator) -> dict[str, Any]:
    """Every RNG state the training run depends on, as plain values and tensors."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy_data": dict(data_rng.bit_generator.state),
        "python": random.getstate(),
    }


def restore_rng(state: Mapping[str, Any], data_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    data_rng.bit_generator.state = dict(state["numpy_data"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def save_training_state(path: str | Path, state: Mapping[str, Any]) -> Path:
    """torch.save to a temp file in the same folder, then rename (never a truncated file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **state}, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by `save_training_state` (restricted unpickler)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"Expected a training checkpoint at '{p}', found none; train first.")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/unsafe files
        raise ModelError(
            f"Expected a readable training checkpoint, got '{p}' which failed to load ({exc}); "
            "delete it to restart from the previous checkpoint."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ModelError(f"Expected a totalseg training checkpoint, got another file at '{p}'.")
    return state
