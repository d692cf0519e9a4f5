"""Training: datasets, preprocessing cache, planning, the trainer and model export.

Light (torch-free) entry points are imported here; `Trainer` and `export_model` load torch and
are imported on first use.

    dataset = read_dataset("Totalsegmentator_dataset/")
    classes = resolve_classes("part:291")
    cases = build_cache(dataset, classes=classes, spacing_mm=3.0, jobs=4)
    plan = plan_training(cases, classes=classes, memory_budget_gb=8)
    Trainer(plan, cases, "runs/part1", config=TrainingConfig(epochs=100)).fit()
    export_model("runs/part1", "models/part1")
"""

from __future__ import annotations

from typing import Any

from totalseg.training.cache import CachedCase, build_cache
from totalseg.training.classes import resolve_classes
from totalseg.training.config import AugmentationConfig, TrainingConfig, TrainingEvent
from totalseg.training.convert import convert_dataset
from totalseg.training.dataset import TrainingCase, TrainingDataset, read_dataset
from totalseg.training.planning import (
    TrainingPlan,
    plan_training,
    read_training_plan,
    write_training_plan,
)

__all__ = [
    "AugmentationConfig",
    "CachedCase",
    "Trainer",
    "TrainingCase",
    "TrainingConfig",
    "TrainingDataset",
    "TrainingEvent",
    "TrainingPlan",
    "build_cache",
    "convert_dataset",
    "export_model",
    "plan_training",
    "read_dataset",
    "read_training_plan",
    "resolve_classes",
    "write_training_plan",
]


def __getattr__(name: str) -> Any:
    if name == "Trainer":
        from totalseg.training.trainer import Trainer

        return Trainer
    if name == "export_model":
        from totalseg.training.export import export_model

        return export_model
    raise AttributeError(f"module 'totalseg.training' has no attribute {name!r}")
