"""totalseg: whole-body CT segmentation, training, evaluation and population studies.

The public API is small and stable; heavy modules (torch) are imported only when used:

segment(ct, task="total", **options) -> LabelMap
    Segment one CT: a NIfTI/DICOM path, a totalseg `Image` or a nibabel `Nifti1Image`. The
    result is on the exact input grid; `result.save("seg.nii.gz")` writes a multilabel file
    with the reference tool's label table, `result.save("masks/")` one mask per structure.
Segmenter(task="total", **options)
    Models loaded once, called per case: `seg = Segmenter("total-fast"); seg(ct1); seg(ct2)`.
SegmentOptions
    Every option of a run (task, roi_subset, device, multilabel, download, ...) as one typed,
    frozen object; `segment`/`Segmenter` take it (`options=`) or its fields as keywords.
run_segment(inputs, output, options) -> RunResult
    The CLI's batch loop: files or folders in, one output per case, models kept loaded.
Image, LabelMap
    A 3D array on a world grid (4x4 affine); LabelMap adds {label value: structure name}.
load_model(folder)
    Load an nnU-Net v2 model folder (safe unpickling).

Missing official weights are downloaded on first use (sha256-verified; set TOTALSEG_OFFLINE=1
to forbid it); see `totalseg weights --help`.
"""

from __future__ import annotations

import logging
from typing import Any

from totalseg.image import Image, LabelMap

__version__ = "0.1.0"
__all__ = [
    "Image",
    "LabelMap",
    "SegmentOptions",
    "Segmenter",
    "__version__",
    "load_model",
    "run_segment",
    "segment",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "segment": "totalseg.pipeline",
    "Segmenter": "totalseg.pipeline",
    "load_model": "totalseg.models",
    "SegmentOptions": "totalseg.options",
    "run_segment": "totalseg.run",
}


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'totalseg' has no attribute {name!r}")
