"""Evaluation as in the paper: Dice, normalized surface distance (NSD), HD95, ASSD, volumes;
bootstrap confidence intervals, Wilcoxon signed-rank tests, tidy tables and comparisons.

Torch-free (numpy/scipy). Array-level functions take boolean masks on one grid plus the voxel
spacing in mm; see `totalseg.metrics.structure` for the edge-case policy.
"""

from totalseg.metrics.box import bounding_box, label_boxes, union_box
from totalseg.metrics.dataset import EvaluationConfig, evaluate_dataset, evaluate_label_maps
from totalseg.metrics.overlap import count_overlap, dice_score
from totalseg.metrics.statistics import (
    MatrixSummary,
    MeanCI,
    PairedTest,
    bootstrap_macro_mean_ci,
    bootstrap_matrix,
    bootstrap_mean_ci,
    format_p,
    wilcoxon_test,
)
from totalseg.metrics.structure import METRICS, StructureResult, evaluate_masks
from totalseg.metrics.surface import SurfaceDistances, surface_distances

__all__ = [
    "METRICS",
    "EvaluationConfig",
    "MatrixSummary",
    "MeanCI",
    "PairedTest",
    "StructureResult",
    "SurfaceDistances",
    "bootstrap_macro_mean_ci",
    "bootstrap_matrix",
    "bootstrap_mean_ci",
    "bounding_box",
    "count_overlap",
    "dice_score",
    "evaluate_dataset",
    "evaluate_label_maps",
    "evaluate_masks",
    "format_p",
    "label_boxes",
    "surface_distances",
    "union_box",
    "wilcoxon_test",
]
