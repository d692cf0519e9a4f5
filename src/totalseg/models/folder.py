"""Reading an nnU-Net v2 trained model folder into networks ready for inference.

```
<model_dir>/  dataset.json  plans.json  fold_0/checkpoint_final.pth  (fold_1 ... fold_all)
```
Fold discovery (`folds=None`): every `fold_N` directory (N an integer; `fold_all` excluded)
that holds the checkpoint, sorted numerically. nnU-Net uses the directory listing order
instead; sorting makes the choice reproducible and only changes the order of the fold average.
Only the first fold's trainer name, configuration and mirror axes are used, as in nnU-Net.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from totalseg.errors import ConfigError, ModelError, WeightsNotFoundError
from totalseg.models.checkpoint import load_checkpoint
from totalseg.models.plan import DatasetInfo, Plan, read_dataset_json, read_plan
from totalseg.models.unet import build_network, input_conv_key

log = logging.getLogger(__name__)

Fold = int | str
_FOLD_RE = re.compile(r"^fold_(\d+)$")
_HOW_TO_FIX = (
    "re-import the model folder (`totalseg weights import ZIP_OR_DIR`) or download it "
    "(`totalseg weights download TASK`)"
)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model folder loaded for inference: one network per fold, all in eval mode on the CPU."""

    folder: Path
    plan: Plan
    dataset: DatasetInfo
    networks: list[nn.Module]
    folds: tuple[Fold, ...]
    mirror_axes: tuple[int, ...] | None
    trainer_name: str
    format: Literal["nnunet_v2", "nnunet_v1"] = "nnunet_v2"  # v1: see models.v1.folder

    @property
    def n_in(self) -> int:
        """Input channels of the networks."""
        return n_input_channels(self.plan, self.dataset)

    @property
    def n_out(self) -> int:
        """Logit channels of the networks (labels incl. background)."""
        return self.dataset.n_heads


def n_input_channels(plan: Plan, dataset: DatasetInfo) -> int:
    """Image channels, plus one-hot foreground channels of the previous stage for cascades."""
    extra = dataset.n_heads - 1 if plan.previous_stage is not None else 0
    return dataset.n_channels + extra


def discover_folds(
    folder: str | Path, checkpoint_name: str = "checkpoint_final.pth"
) -> tuple[int, ...]:
    """Integer folds of a model folder that hold `checkpoint_name`, sorted (see module doc)."""
    folder = Path(folder)
    found = []
    for child in folder.iterdir() if folder.is_dir() else ():
        match = _FOLD_RE.match(child.name)
        if match and (child / checkpoint_name).is_file():
            found.append(int(match.group(1)))
    return tuple(sorted(found))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsNotFoundError(
            f"Expected {path.name} in the model folder '{path.parent}', got none; {_HOW_TO_FIX}."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"'{path}' is not readable JSON ({exc}); {_HOW_TO_FIX}.") from None
    if not isinstance(data, dict):
        raise ModelError(f"Expected a JSON object in '{path}', got {type(data).__name__}.")
    return data


def _resolve_folds(
    folder: Path, folds: Sequence[Fold] | Fold | None, checkpoint_name: str
) -> tuple[Fold, ...]:
    if folds is None:
        found = discover_folds(folder, checkpoint_name)
        if not found:
            dirs = sorted(p.name for p in folder.glob("fold_*"))
            raise WeightsNotFoundError(
                f"Expected fold_N/{checkpoint_name} in '{folder}', got folds {dirs or 'none'}; "
                f"{_HOW_TO_FIX}, or pass folds=('all',) for fold_all."
            )
        return found
    items = [folds] if isinstance(folds, (int, str)) else list(folds)
    out: list[Fold] = []
    for f in items:
        if f != "all" and not str(f).isdigit():
            raise ConfigError(f"Expected folds as integers or 'all', got {f!r}.")
        fold: Fold = "all" if f == "all" else int(f)
        if not (folder / f"fold_{fold}" / checkpoint_name).is_file():
            raise WeightsNotFoundError(
                f"Expected '{folder / f'fold_{fold}' / checkpoint_name}', got no such file "
                f"(available: {list(discover_folds(folder, checkpoint_name))}); {_HOW_TO_FIX}."
            )
        out.append(fold)
    if not out:
        raise ConfigError("Expected at least one fold, got an empty list.")
    return tuple(out)


def _strip_prefix(weights: Mapping[str, Any]) -> dict[str, Any]:
    for prefix in ("module.", "_orig_mod."):
        if weights and all(k.startswith(prefix) for k in weights):
            return {k[len(prefix) :]: v for k, v in weights.items()}
    return dict(weights)


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], got: Mapping[str, Any]) -> str | None:
    """One-line description of missing/unexpected keys and shape mismatches (None: they match)."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(getattr(got[k], 'shape', ()))} vs plan {tuple(v.shape)}"
        for k, v in expected.items()
        if k in got and tuple(getattr(got[k], "shape", ())) != tuple(v.shape)
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mismatched", shapes)):
        if items:
            more = f", ... ({len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{len(items)} {label} key(s) ({', '.join(items[:3])}{more})")
    return "; ".join(parts) or None


def _network_for(
    weights: Mapping[str, Any], plan: Plan, dataset: DatasetInfo, where: str
) -> nn.Module:
    n_in, n_out = n_input_channels(plan, dataset), dataset.n_heads
    first = weights.get(input_conv_key(plan.architecture))
    if isinstance(first, torch.Tensor) and first.ndim >= 2 and first.shape[1] != n_in:
        raise ModelError(
            f"Expected a checkpoint for {n_in} input channel(s) (dataset.json channel_names "
            f"{list(dataset.channel_names)}), got one for {first.shape[1]} ({where}); "
            "the checkpoint and dataset.json belong to different models."
        )
    seg_key = f"decoder.seg_layers.{plan.architecture.n_stages - 2}.weight"
    seg = weights.get(seg_key)
    if isinstance(seg, torch.Tensor) and seg.shape[0] != n_out:
        raise ModelError(
            f"Expected a checkpoint with {n_out} output channels (labels of dataset.json), got "
            f"{seg.shape[0]} ({where}); the checkpoint and dataset.json belong to different models."
        )
    with torch.device("meta"):  # no init, no allocation: the checkpoint tensors are assigned
        network = build_network(plan.architecture, n_in, n_out, deep_supervision=False)
    problem = state_dict_mismatch(network.state_dict(), weights)
    if problem:
        raise ModelError(
            f"Checkpoint does not match the {plan.architecture.network_class_name} of plans.json "
            f"configuration {plan.configuration!r} ({where}): {problem}; the plans.json and "
            f"checkpoint belong to different models, {_HOW_TO_FIX}."
        )
    as_float32 = {
        k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in weights.items()
    }  # like nnU-Net's copy into float32 parameters
    network.load_state_dict(as_float32, strict=True, assign=True)
    network.eval()
    network.requires_grad_(False)
    return network


def load_model_folder(
    path: str | Path,
    *,
    folds: Sequence[Fold] | Fold | None = None,
    checkpoint_name: str = "checkpoint_final.pth",
    configuration: str | None = None,
) -> LoadedModel:
    """Load a trained nnU-Net v2 model folder: plan, dataset info and one network per fold.

    `configuration` defaults to the checkpoint's `init_args['configuration']`. Checkpoints are
    loaded with the restricted unpickler and strictly (every key and shape must match).
    An nnU-Net 1 folder (plans.pkl, no plans.json) is read by `models.v1.folder`.
    """
    folder = Path(path)
    if (folder / "plans.pkl").is_file() and not (folder / "plans.json").is_file():
        from totalseg.models.v1.folder import load_v1_model_folder

        v1_name = "model_final_checkpoint" if checkpoint_name == "checkpoint_final.pth" else None
        return load_v1_model_folder(folder, folds=folds, checkpoint_name=v1_name or checkpoint_name)
    if not folder.is_dir():
        raise WeightsNotFoundError(
            f"Expected a model folder (dataset.json, plans.json, fold_N/) at '{folder}', got "
            f"{'a file' if folder.exists() else 'nothing'}; {_HOW_TO_FIX}."
        )
    dataset_json = _read_json(folder / "dataset.json")
    plans_json = _read_json(folder / "plans.json")
    dataset = read_dataset_json(dataset_json, where=f"'{folder / 'dataset.json'}'")
    fold_ids = _resolve_folds(folder, folds, checkpoint_name)
    first_path = folder / f"fold_{fold_ids[0]}" / checkpoint_name
    first = load_checkpoint(first_path)
    plan = read_plan(plans_json, _configuration(first, configuration, first_path))
    if len(plan.normalization_schemes) != dataset.n_channels:
        raise ModelError(
            f"Expected plans.json to normalise {dataset.n_channels} channel(s) like dataset.json "
            f"declares, got {len(plan.normalization_schemes)} normalization_schemes ('{folder}'); "
            "plans.json and dataset.json belong to different models."
        )
    axes = first.get("inference_allowed_mirroring_axes")
    trainer = str(first.get("trainer_name", ""))
    networks: list[nn.Module] = []
    for fold in fold_ids:
        ckpt_path = folder / f"fold_{fold}" / checkpoint_name
        ckpt = first if fold == fold_ids[0] else load_checkpoint(ckpt_path)
        weights = ckpt.get("network_weights")
        if not isinstance(weights, Mapping):
            raise ModelError(
                f"Expected 'network_weights' in checkpoint '{ckpt_path}', got keys "
                f"{sorted(ckpt)[:8]}; {_HOW_TO_FIX}."
            )
        networks.append(_network_for(_strip_prefix(weights), plan, dataset, f"'{ckpt_path}'"))
        del ckpt, weights
    del first
    log.debug("loaded %s folds %s (%s, %s)", folder, fold_ids, trainer, plan.configuration)
    return LoadedModel(
        folder=folder,
        plan=plan,
        dataset=dataset,
        networks=networks,
        folds=fold_ids,
        mirror_axes=None if axes is None else tuple(int(a) for a in axes),
        trainer_name=trainer,
    )


def _configuration(ckpt: Mapping[str, Any], requested: str | None, where: Path) -> str:
    init_args = ckpt.get("init_args")
    stored = init_args.get("configuration") if isinstance(init_args, Mapping) else None
    if requested is None and stored is None:
        raise ModelError(
            f"Checkpoint '{where}' does not record its configuration (init_args missing); "
            "pass configuration='3d_fullres' (or the right one)."
        )
    if requested is not None and stored is not None and requested != stored:
        log.warning("checkpoint %s was trained as %r; using requested %r", where, stored, requested)
    return str(requested if requested is not None else stored)


def load_model(
    source: str | Path | int,
    *,
    folds: Sequence[Fold] | Fold | None = None,
    checkpoint_name: str = "checkpoint_final.pth",
    home: str | Path | None = None,
) -> tuple[LoadedModel, ...]:
    """Load a model folder (path), an installed dataset (id such as 291) or a named task.

    Returns one `LoadedModel` per part, in the task's merge order (a folder or a single-model
    task gives a 1-tuple). Installed weights are looked up under the weights home.
    """
    from totalseg.models.tasks import get_task
    from totalseg.models.weights import find_model_folder

    kwargs: dict[str, Any] = {"folds": folds, "checkpoint_name": checkpoint_name}
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return (load_model_folder(find_model_folder(int(source), home=home), **kwargs),)
    if isinstance(source, Path) or Path(source).exists() or "/" in str(source):
        return (load_model_folder(source, **kwargs),)
    task = get_task(str(source))
    return tuple(
        load_model_folder(find_model_folder(d, home=home), **kwargs) for d in task.datasets
    )
