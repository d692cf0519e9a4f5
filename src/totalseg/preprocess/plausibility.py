"""Is this plausibly a CT in Hounsfield units? One check for the read step of `segment`,
`stats` and `study`, before any model sees the image.

Refused (an `InputError` saying what was found and what to do; `force` turns the refusal into
one warning line):
  * tiny images (an axis of 1 voxel, or fewer than `MIN_VOXELS` voxels) and constant images;
  * NaN or infinite voxels (e.g. a scale slope that overflowed);
  * values outside [-32768, 65535], which no CT scanner stores (e.g. int64 garbage);
  * nothing below -200 HU: no air, no lung, no fat. That is what MR (or a CT stored without its
    rescale intercept, raw 0..4095) looks like; an MR task (`total_mr`) takes MR.
Warned (one line, the run goes on):
  * no air (nothing near -1000 HU; lowest value above -900);
  * values above 3071 HU (beyond the 12-bit CT scale: metal, or a wrong slope) or below -3072
    (below any scanner's out-of-field padding such as -2048 or -3024).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from totalseg.errors import InputError
from totalseg.image import Image

__all__ = ["MIN_VOXELS", "CtFindings", "check_ct", "inspect_ct"]

log = logging.getLogger(__name__)

MIN_VOXELS = 1000
_STORABLE_HU = (-32768.0, 65535.0)
_MR_LIKE_MIN_HU = -200.0
_AIR_HU = -900.0
_CT_SCALE_HU = (-3072.0, 3071.0)


@dataclass(frozen=True)
class CtFindings:
    """What the check found: a reason to refuse (None: none) and warnings (one line each)."""

    refusal: str | None
    warnings: tuple[str, ...]


def _range(array: np.ndarray) -> tuple[float, float, int]:
    """(min, max) of the finite voxels and the number of non-finite ones."""
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        n_bad = int(array.size - np.count_nonzero(finite))
        values = array[finite] if n_bad else array
    else:
        n_bad, values = 0, array
    if values.size == 0:
        return float("nan"), float("nan"), n_bad
    return float(values.min()), float(values.max()), n_bad


def inspect_ct(image: Image) -> CtFindings:
    """The findings of the CT plausibility check (nothing is raised or logged)."""
    shape = image.shape
    if min(shape) < 2 or int(np.prod(shape)) < MIN_VOXELS:
        return CtFindings(
            f"a tiny image of {'x'.join(map(str, shape))} voxels (a CT volume has at least "
            f"{MIN_VOXELS} voxels and 2 along every axis)",
            (),
        )
    lo, hi, n_bad = _range(np.asarray(image.array))
    if n_bad:
        return CtFindings(
            f"{n_bad} NaN or infinite voxels (an overflowing scale slope or a broken export?)",
            (),
        )
    if lo == hi:
        return CtFindings(f"a constant image (every voxel is {lo:g})", ())
    if lo < _STORABLE_HU[0] or hi > _STORABLE_HU[1]:
        return CtFindings(
            f"values from {lo:.4g} to {hi:.4g}, far outside any CT range (HU are stored in "
            "16 bits: -32768..65535)",
            (),
        )
    if lo >= _MR_LIKE_MIN_HU:
        return CtFindings(
            f"no value below {lo:.4g} (range {lo:.4g}..{hi:.4g}): a CT has air at about -1000 HU; "
            "this looks like MR, or CT stored without its rescale intercept",
            (),
        )
    warnings = []
    if lo > _AIR_HU:
        warnings.append(f"no air in the image (lowest value {lo:.4g} HU; air is about -1000)")
    if lo < _CT_SCALE_HU[0] or hi > _CT_SCALE_HU[1]:
        warnings.append(
            f"values from {lo:.4g} to {hi:.4g} HU reach beyond the CT scale "
            f"({_CT_SCALE_HU[0]:g}..{_CT_SCALE_HU[1]:g}); check the rescale slope/intercept"
        )
    return CtFindings(None, tuple(warnings))


def check_ct(image: Image, *, where: str, force: bool = False) -> CtFindings:
    """Refuse an image that is not plausibly CT (unless `force`); log the borderline findings
    as one warning line. Returns the findings."""
    findings = inspect_ct(image)
    if findings.refusal is not None and not force:
        raise InputError(
            f"Expected a CT image in HU, got {findings.refusal} in {where}; check the input "
            "(for MR use an MR task such as --task total_mr), or pass --force (force=True) to "
            "segment it anyway."
        )
    lines = ([findings.refusal] if findings.refusal else []) + list(findings.warnings)
    if lines:
        log.warning("%s: %s%s.", where, "; ".join(lines), " (--force)" if force else "")
    return findings
