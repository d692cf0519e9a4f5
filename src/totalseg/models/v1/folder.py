"""Reading an nnU-Net 1 trained model folder into networks ready for inference.

As nnU-Net 1's `load_model_and_checkpoint_files`: the trainer's plans and stage come from the
first fold's `model_final_checkpoint.model.pkl` (`plans`, `init[5]`), the weights from each
fold's `model_final_checkpoint.model` (`state_dict`, a `module.` prefix stripped). Everything is
read with allow-list unpicklers (no code from the files runs) and loaded strictly. Only
`nnUNetTrainerV2*` trainers (Generic_UNet, 3D) are supported; `*nomirror*` trainers allow no
test-time mirroring, the others mirror on axes (0, 1, 2).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from totalseg.errors import ConfigError, ModelError, WeightsNotFoundError
from totalseg.models.checkpoint import load_checkpoint
from totalseg.models.folder import Fold, LoadedModel, state_dict_mismatch
from totalseg.models.v1.layout import CHECKPOINT, task_id_of, v1_fold_names
from totalseg.models.v1.network import GenericUNet
from totalseg.models.v1.plans import read_v1_plans, v1_dataset_info, v1_stage
from totalseg.models.v1.unpickle import read_v1_pickle

__all__ = ["load_v1_model_folder"]

log = logging.getLogger(__name__)
_HOW_TO_FIX = "re-import the v1 release zip (`totalseg weights import ZIP_OR_DIR`)"


def _resolve_folds(folder: Path, folds: Sequence[Fold] | Fold | None, name: str) -> list[str]:
    available = list(v1_fold_names(folder, name))
    if folds is None:
        chosen = [f for f in available if f[5:].isdigit()]
    else:
        items = [folds] if isinstance(folds, (int, str)) else list(folds)
        chosen = [f"fold_{f}" for f in items]
        for f in items:
            if f != "all" and not str(f).isdigit():
                raise ConfigError(f"Expected folds as integers or 'all', got {f!r}.")
    missing = [f for f in chosen if f not in available]
    if not chosen or missing:
        raise WeightsNotFoundError(
            f"Expected {missing or ['fold_N']} with {name}.model and {name}.model.pkl in "
            f"'{folder}', got {available or 'none'}; {_HOW_TO_FIX}."
        )
    return chosen


def _network(weights: Mapping[str, Any], model: LoadedModel, where: Path) -> nn.Module:
    if weights and all(k.startswith("module.") for k in weights):
        weights = {k[len("module.") :]: v for k, v in weights.items()}
    with torch.device("meta"):
        network = GenericUNet(model.plan.architecture, model.n_in, model.n_out)
    problem = state_dict_mismatch(network.state_dict(), weights)
    if problem:
        raise ModelError(
            f"Checkpoint '{where}' does not match the Generic_UNet of its plans: {problem}; the "
            f"plans and the checkpoint belong to different models, {_HOW_TO_FIX}."
        )
    as_float32 = {
        k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in weights.items()
    }
    network.load_state_dict(as_float32, strict=True, assign=True)
    network.eval()
    network.requires_grad_(False)
    return network


def _trainer_info(info: Any, where: Path) -> tuple[str, Mapping[Any, Any], int | None]:
    if not isinstance(info, Mapping) or not isinstance(info.get("plans"), Mapping):
        raise ModelError(
            f"Expected an nnU-Net 1 trainer record (a dict with 'plans') in '{where}', got "
            f"{type(info).__name__}; {_HOW_TO_FIX}."
        )
    name = str(info.get("name", ""))
    if not name.startswith("nnUNetTrainerV2"):
        raise ModelError(
            f"Expected an nnUNetTrainerV2* model (Generic_UNet), got trainer {name!r} in "
            f"'{where}'; other nnU-Net 1 trainers are not supported."
        )
    init = info.get("init")
    stage = init[5] if isinstance(init, (tuple, list)) and len(init) > 5 else None
    return name, info["plans"], None if stage is None else int(stage)


def load_v1_model_folder(
    path: str | Path,
    *,
    folds: Sequence[Fold] | Fold | None = None,
    checkpoint_name: str = CHECKPOINT,
) -> LoadedModel:
    """Load an nnU-Net 1 model folder (see the module doc); `format` is 'nnunet_v1'."""
    folder = Path(path)
    name = checkpoint_name.removesuffix(".model")
    fold_dirs = _resolve_folds(folder, folds, name)
    first_pkl = folder / fold_dirs[0] / f"{name}.model.pkl"
    trainer, plans, stage = _trainer_info(read_v1_pickle(first_pkl), first_pkl)
    where = f"'{first_pkl}'"
    stage = v1_stage(plans, stage, where)
    plan = read_v1_plans(plans, stage, where=where)
    dataset = v1_dataset_info(plans, task_id_of(folder), where=where)
    model = LoadedModel(
        folder=folder,
        plan=plan,
        dataset=dataset,
        networks=[],
        folds=tuple(int(f[5:]) if f[5:].isdigit() else f[5:] for f in fold_dirs),
        mirror_axes=None if "nomirror" in trainer.lower() else (0, 1, 2),
        trainer_name=trainer,
        format="nnunet_v1",
    )
    for fold in fold_dirs:
        ckpt_path = folder / fold / f"{name}.model"
        weights = load_checkpoint(ckpt_path).get("state_dict")
        if not isinstance(weights, Mapping):
            raise ModelError(f"Expected 'state_dict' in the v1 checkpoint '{ckpt_path}'.")
        model.networks.append(_network(weights, model, ckpt_path))
    log.debug("loaded v1 %s folds %s (%s, stage %d)", folder, model.folds, trainer, stage)
    return model
