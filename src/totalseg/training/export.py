"""Export a training run as an nnU-Net v2 model folder (loadable by totalseg and nnunetv2).

The folder holds the run's plans.json / dataset.json and ``fold_<fold>/checkpoint_final.pth``
with the chosen checkpoint's weights, trainer ``nnUNetTrainerNoMirroring`` and no mirroring
axes (the model was trained without mirroring, so test-time mirroring would hurt it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from totalseg.errors import ConfigError
from totalseg.training.planning import CONFIGURATION
from totalseg.training.state import TRAINER_NAME, load_training_state

__all__ = ["CheckpointChoice", "export_model"]

log = logging.getLogger(__name__)

CheckpointChoice = Literal["final", "best", "latest"]


def export_model(
    run_dir: str | Path,
    dest: str | Path,
    *,
    checkpoint: CheckpointChoice = "final",
    fold: int | str = 0,
    overwrite: bool = False,
    store_fp16: bool = False,
) -> Path:
    """Write the model folder `dest` from `run_dir`'s checkpoint; return `dest`.

    `store_fp16` halves the checkpoint (weights stored as float16, upcast at load).
    """
    from totalseg.models.writer import write_model_folder

    if checkpoint not in ("final", "best", "latest"):
        raise ConfigError(f"Expected checkpoint 'final', 'best' or 'latest', got {checkpoint!r}.")
    state = load_training_state(Path(run_dir) / f"checkpoint_{checkpoint}.pth")
    init = state["init_args"]
    out = write_model_folder(
        dest,
        plans=init["plans"],
        dataset_json=init["dataset_json"],
        state_dicts={fold: state["network_weights"]},
        trainer_name=TRAINER_NAME,
        configuration=CONFIGURATION,
        mirror_axes=None,
        overwrite=overwrite,
        current_epoch=int(state["epoch"]),
        store_fp16=store_fp16,
    )
    log.info("Exported %s (epoch %d) to %s.", checkpoint, int(state["epoch"]), out)
    return out
