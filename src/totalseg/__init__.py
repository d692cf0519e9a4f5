"""totalseg: whole-body CT segmentation, training, evaluation and population studies.

The public API is small and stable; heavy modules (torch) are imported only when used.
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'totalseg' has no attribute {name!r}")
