"""nnU-Net 1's postprocessing: keep only the largest connected component of some classes.

`keep_largest_components` is `remove_all_but_the_largest_connected_component`: for each class
(or tuple of classes treated as one mask), face-connected components (scipy's default
structure); every component whose size differs from the largest one's is removed, unless
`min_valid_mm3` is given and the component is at least that large. Sizes are voxel counts times
`voxel_volume_mm3`. Ties with the largest size are all kept, as in nnU-Net 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.ndimage import label

__all__ = ["ClassSpec", "keep_largest_components"]

ClassSpec = int | tuple[int, ...]


def keep_largest_components(
    labels: np.ndarray,
    classes: Sequence[ClassSpec],
    *,
    voxel_volume_mm3: float,
    min_valid_mm3: Mapping[ClassSpec, float] | None = None,
) -> np.ndarray:
    """A copy of `labels` with the smaller components of `classes` set to 0 (see module doc)."""
    out = np.array(labels, copy=True)
    for c in classes:
        mask = np.isin(out, list(c)) if isinstance(c, tuple) else out == c
        components, n = label(mask.astype(int))
        if n == 0:
            continue
        sizes = np.bincount(components.ravel())[1:] * voxel_volume_mm3
        largest = sizes.max()
        for index, size in enumerate(sizes, start=1):
            if size == largest:
                continue
            if min_valid_mm3 is not None and not size < min_valid_mm3[c]:
                continue
            out[(components == index) & mask] = 0
    return out
