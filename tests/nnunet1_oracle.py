"""nnU-Net 1 (PyPI `nnunet==1.7.1`) as a test-only oracle: v1 model folders written by its own
planner and trainer code, and its own predictor run on them.

Install (the extra `oracle-v1`; nnunet 1.7.1 pins nothing that clashes, but its dependency list
drags in packages its inference does not import, so the venv gets it without them):
    pip install --no-deps "nnunet==1.7.1" "medpy==0.5.2"
(batchgenerators, SimpleITK, scikit-image, scipy come with nnunetv2 / the dev extra.) Tests that
need it skip with a reason when it is missing.

`write_v1_model_folder` runs `ExperimentPlanner3D_v21.plan_experiment` on synthetic dataset
properties (the planner's input: spacings, sizes, CT intensity statistics) and
`nnUNetTrainerV2.initialize(training=False)` + `save_checkpoint` (random He init, then every
parameter jittered so InstanceNorm affines and biases are not trivial), into the folder layout
`<root>/nnUNet/3d_fullres/TaskXXX_Name/<trainer>__nnUNetPlansv2.1/`. With `numpy_core` the
pickles are rewritten (protocol 2) to name `numpy.core.*`, as files written with numpy 1.x do.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REASON = 'needs the nnU-Net 1 oracle: pip install --no-deps "nnunet==1.7.1" "medpy==0.5.2"'


def require_nnunet1() -> Any:
    """Import nnunet 1.x (skipping the test without it), with its paths set to a dummy."""
    # nnU-Net 1-only names (nnUNet_preprocessed is shared with nnunetv2: left alone)
    for name in ("nnUNet_raw_data_base", "RESULTS_FOLDER"):
        os.environ.setdefault(name, "/nonexistent-nnunet1")
    with contextlib.redirect_stdout(io.StringIO()):
        nnunet = pytest.importorskip("nnunet", reason=REASON)
        pytest.importorskip("medpy", reason=REASON)
    if not str(getattr(nnunet, "__version__", "1.7.1")).startswith("1."):
        pytest.skip(REASON)
    return nnunet


def trainer_class(name: str) -> Any:
    """nnUNetTrainerV2, or a `*_nomirror` variant like TotalSegmentator 1.x's trainers."""
    from nnunet.training.network_training.nnUNetTrainerV2 import nnUNetTrainerV2

    if name == "nnUNetTrainerV2":
        return nnUNetTrainerV2

    def setup_da_params(self: Any) -> None:
        nnUNetTrainerV2.setup_DA_params(self)
        self.data_aug_params["do_mirror"] = False

    return type(name, (nnUNetTrainerV2,), {"setup_DA_params": setup_da_params})


def _properties(spacing: Sequence[float], size: Sequence[int], n_classes: int) -> dict:
    rng = np.random.default_rng(0)
    values = rng.normal(40.0, 180.0, 5000)
    intensity = OrderedDict(
        median=np.median(values), mean=np.mean(values), sd=np.std(values),
        mn=np.min(values), mx=np.max(values), percentile_99_5=np.percentile(values, 99.5),
        percentile_00_5=np.percentile(values, 0.5), local_props=OrderedDict(),
    )  # fmt: skip
    return {
        "all_spacings": [np.array(spacing, dtype=float)] * 3,
        "all_sizes": [np.array(size)] * 3,
        "modalities": {0: "CT"},
        "all_classes": list(range(1, n_classes + 1)),
        "intensityproperties": OrderedDict({0: intensity}),
        "size_reductions": OrderedDict(),
    }


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """nnU-Net 1 prints a lot and warns about deprecated torch APIs."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def write_v1_model_folder(
    root: Path,
    task: str,
    *,
    spacing_zyx: Sequence[float],
    size_zyx: Sequence[int],
    n_classes: int,
    trainer: str = "nnUNetTrainerV2",
    base_features: int = 4,
    seed: int = 0,
    numpy_core: bool = True,
    folds: Sequence[int] = (0,),
) -> Path:
    """A random-init v1 model folder as nnU-Net 1 writes it (see the module doc)."""
    require_nnunet1()
    import torch
    from batchgenerators.utilities.file_and_folder_operations import save_pickle
    from nnunet.experiment_planning.experiment_planner_baseline_3DUNet_v21 import (
        ExperimentPlanner3D_v21,
    )

    work = root / f".plan-{task}"
    (work / "cropped").mkdir(parents=True)
    (work / "preprocessed").mkdir()
    save_pickle(
        _properties(spacing_zyx, size_zyx, n_classes), str(work / "cropped/dataset_properties.pkl")
    )
    model = root / "nnUNet" / "3d_fullres" / task / f"{trainer}__nnUNetPlansv2.1"
    with quiet():
        planner = ExperimentPlanner3D_v21(str(work / "cropped"), str(work / "preprocessed"))
        planner.unet_base_num_features = base_features
        planner.plan_experiment()
        model.mkdir(parents=True)
        shutil.copy(planner.plans_fname, model / "plans.pkl")
        stage = max(planner.plans["plans_per_stage"])
        for fold in folds:
            torch.manual_seed(seed + fold)
            tr = trainer_class(trainer)(
                str(model / "plans.pkl"), fold, output_folder=str(model),
                dataset_directory=str(work / "preprocessed"), batch_dice=True, stage=stage,
                unpack_data=True, deterministic=False, fp16=False,
            )  # fmt: skip
            tr.initialize(training=False)
            with torch.no_grad():
                for p in tr.network.parameters():
                    p.add_(torch.randn_like(p) * 0.1)
            tr.all_tr_losses = [np.float64(0.9), np.float64(0.7)]
            tr.all_val_eval_metrics = [np.float32(0.3)]
            tr.save_checkpoint(os.path.join(tr.output_folder, "model_final_checkpoint.model"))
    shutil.rmtree(work)
    if numpy_core:
        for path in model.rglob("*.pkl"):
            path.write_bytes(_as_numpy_core(path.read_bytes(), plain=True))
        for path in model.rglob("*.model"):
            path.write_bytes(_as_numpy_core(path.read_bytes(), plain=False))
    return model


def _rename(data: bytes) -> bytes:
    return data.replace(b"cnumpy._core.", b"cnumpy.core.")


def _as_numpy_core(data: bytes, *, plain: bool) -> bytes:
    """Protocol-2 pickle naming numpy.core.* (a torch zip: its data.pkl, already protocol 2)."""
    if plain:
        obj = pickle.loads(data)  # our own file, just written
        return _rename(pickle.dumps(obj, protocol=2))
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name in src.namelist():
            content = src.read(name)
            dst.writestr(name, _rename(content) if name.endswith("data.pkl") else content)
    return out.getvalue()


@contextlib.contextmanager
def trainer_lookup() -> Iterator[None]:
    """Let nnU-Net 1's `restore_model` find the test's `*_nomirror` trainer classes and load
    its checkpoints as it did before torch 2.6 (weights_only=False)."""
    import nnunet.training.model_restore as restore

    original = restore.recursive_find_python_class
    # nnU-Net 1 predates torch 2.6's weights_only default; the oracle loads our own files
    previous = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"

    def find(folder: Any, name: str, current_module: str) -> Any:
        found = original(folder, name, current_module)
        return found if found is not None or "nomirror" not in name else trainer_class(name)

    restore.recursive_find_python_class = find
    try:
        yield
    finally:
        restore.recursive_find_python_class = original
        if previous is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = previous


def nnunet1_predict(
    model: Path,
    image: Path,
    out: Path,
    *,
    mode: str = "normal",
    tta: bool = True,
    step_size: float = 0.5,
    folds: Sequence[int] = (0,),
) -> np.ndarray:
    """nnU-Net 1's `predict_cases` (or `predict_cases_fastest`) on one NIfTI -> its label array
    (nibabel order)."""
    require_nnunet1()
    import nibabel as nib
    from nnunet.inference.predict import predict_cases, predict_cases_fastest

    kwargs: dict[str, Any] = {
        "do_tta": tta, "mixed_precision": False, "step_size": step_size,
        "checkpoint_name": "model_final_checkpoint", "overwrite_existing": True,
    }  # fmt: skip
    cases, outs = [[str(image)]], [str(out)]
    with quiet(), trainer_lookup():
        if mode == "fastest":
            predict_cases_fastest(str(model), cases, outs, list(folds), 1, 1, **kwargs)
        else:
            predict_cases(str(model), cases, outs, list(folds), False, 1, 1, **kwargs)
    return np.asarray(nib.load(out).dataobj)
