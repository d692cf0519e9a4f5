"""Synthetic whole-body CT phantoms with exact ground truth, and synthetic cohorts.

from totalseg.phantom import generate_subject, sample_subject_params
phantom = generate_subject(sample_subject_params(0, fov="abdomen", spacing_mm=3.0))
phantom.image, phantom.label_map("v1")          # int16 HU, 104-class ground truth
"""

from totalseg.phantom.cohort import COHORT_COLUMNS, generate_cohort, subject_statistics
from totalseg.phantom.dataset import DatasetOptions, write_dataset
from totalseg.phantom.effects import (
    DEFAULT_EFFECTS,
    DEFAULT_HEIGHT_TREND,
    SEX_VOLUME_RATIOS,
    HeightTrend,
    PopulationEffect,
    confounded_volume_effects,
    planted_structures,
)
from totalseg.phantom.generate import Phantom, generate_subject
from totalseg.phantom.params import FOVS, ORIENTATIONS, PHASES, SubjectParams, sample_subject_params

__all__ = [
    "COHORT_COLUMNS",
    "DEFAULT_EFFECTS",
    "DEFAULT_HEIGHT_TREND",
    "FOVS",
    "ORIENTATIONS",
    "PHASES",
    "SEX_VOLUME_RATIOS",
    "DatasetOptions",
    "HeightTrend",
    "Phantom",
    "PopulationEffect",
    "SubjectParams",
    "confounded_volume_effects",
    "generate_cohort",
    "generate_subject",
    "planted_structures",
    "sample_subject_params",
    "subject_statistics",
    "write_dataset",
]
