"""Hand-made nnU-Net 1 model folders for the default tests (no nnU-Net 1 needed): the plans
dict and checkpoint structure nnU-Net 1's planner and trainer write (see tests/nnunet1_oracle.py
for folders written by nnU-Net 1 itself), a random `GenericUNet` as the weights."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from totalseg.models.v1.network import GenericUNet
from totalseg.models.v1.plans import read_v1_plans

TRAINER = "nnUNetTrainerV2_ep4000_nomirror"


def v1_plans(n_classes: int, *, patch: tuple[int, int, int] = (16, 16, 16)) -> dict[str, Any]:
    """Plans as ExperimentPlanner3D_v21 writes them (numpy values included), tiny network."""
    intensity = OrderedDict(
        median=np.float64(30.0), mean=np.float64(25.5), sd=np.float64(160.25),
        mn=np.float64(-1000.0), mx=np.float64(1800.0), percentile_99_5=np.float64(900.0),
        percentile_00_5=np.float64(-700.0), local_props=OrderedDict(),
    )  # fmt: skip
    stage = {
        "batch_size": 2, "num_pool_per_axis": [2, 2, 2], "patch_size": np.array(patch),
        "median_patient_size_in_voxels": np.array(patch), "current_spacing": np.array([1.5] * 3),
        "original_spacing": np.array([1.5] * 3), "do_dummy_2D_data_aug": np.False_,
        "pool_op_kernel_sizes": [[2, 2, 2], [2, 2, 2]],
        "conv_kernel_sizes": [[3, 3, 3], [3, 3, 3], [3, 3, 3]],
    }  # fmt: skip
    return {
        "num_stages": 1, "num_modalities": 1, "modalities": {0: "CT"},
        "normalization_schemes": OrderedDict({0: "CT"}),
        "dataset_properties": {"intensityproperties": OrderedDict({0: intensity})},
        "num_classes": n_classes, "all_classes": list(range(1, n_classes + 1)),
        "base_num_features": 4, "use_mask_for_norm": OrderedDict({0: False}),
        "keep_only_largest_region": None, "min_region_size_per_class": None,
        "min_size_per_class": None, "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2], "data_identifier": "nnUNetData_plans_v2.1",
        "plans_per_stage": {0: stage}, "preprocessor_name": "GenericPreprocessor",
        "conv_per_stage": 2,
    }  # fmt: skip


def hand_v1_model_folder(
    root: Path, task: str, n_classes: int, *, trainer: str = TRAINER, seed: int = 0
) -> Path:
    """`root/task/<trainer>__nnUNetPlansv2.1/` with plans.pkl and fold_0's two files."""
    plans = v1_plans(n_classes)
    model = root / task / f"{trainer}__nnUNetPlansv2.1"
    (model / "fold_0").mkdir(parents=True)
    (model / "plans.pkl").write_bytes(pickle.dumps(plans))
    spec = read_v1_plans(plans, 0).architecture
    torch.manual_seed(seed)
    network = GenericUNet(spec, 1, n_classes + 1)
    with torch.no_grad():
        for p in network.parameters():
            p.normal_(0.0, 0.3)
    ckpt = {
        "epoch": 4000, "state_dict": network.state_dict(), "optimizer_state_dict": None,
        "lr_scheduler_state_dict": None,
        "plot_stuff": ([np.float64(0.5)], [np.float64(0.4)], [], [np.float32(0.6)]),
        "best_stuff": (None, None, None),
    }  # fmt: skip
    torch.save(ckpt, model / "fold_0" / "model_final_checkpoint.model")
    info = OrderedDict(
        init=(str(model / "plans.pkl"), 0, str(model), "/data", True, 0, True, False, True),
        name=trainer, plans=plans,
    )  # fmt: skip
    info["class"] = f"<class '{trainer}'>"
    (model / "fold_0" / "model_final_checkpoint.model.pkl").write_bytes(pickle.dumps(info))
    return model
