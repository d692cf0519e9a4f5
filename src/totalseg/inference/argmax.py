"""The argmax over classes of a (K, ...) logits array, exactly `np.argmax(logits, 0)`, faster.

numpy's argmax over the first axis of fp16 logits converts element by element; here the voxels
are taken in chunks that stay in the cache, each class converted to float32 once (exact) and
compared with the running maximum (a strict `>` keeps the lowest index on ties, as argmax does).
A chunk holding NaN or inf goes through `np.argmax` itself, so even those give its answer.
"""

from __future__ import annotations

import numpy as np

from totalseg.errors import InputError

__all__ = ["argmax_classes"]

_CHUNK = 1 << 15


def argmax_classes(logits: np.ndarray, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """`np.argmax(logits, axis=0).astype(dtype)` for (K, ...) float logits."""
    if logits.ndim < 2 or logits.shape[0] < 1:
        raise InputError(f"Expected (classes, ...) logits, got shape {logits.shape}.")
    n_classes = logits.shape[0]
    if np.iinfo(dtype).max < n_classes - 1:
        raise InputError(f"Expected a label dtype that holds {n_classes} classes, got {dtype}.")
    flat = logits.reshape(n_classes, -1)
    n = flat.shape[1]
    out = np.zeros(n, dtype=dtype)
    best = np.empty(min(n, _CHUNK), dtype=np.float32)
    current = np.empty_like(best)
    greater = np.empty(best.shape, dtype=bool)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        block, labels = flat[:, start:stop], out[start:stop]
        with np.errstate(invalid="ignore", over="ignore"):
            finite = bool(np.isfinite(block.sum(dtype=np.float32)))
        if not finite:  # NaN or inf somewhere: numpy's way
            labels[...] = block.argmax(0)
            continue
        width = stop - start
        b, c, g = best[:width], current[:width], greater[:width]
        b[...] = block[0]
        for k in range(1, n_classes):
            c[...] = block[k]
            np.greater(c, b, out=g)
            np.copyto(b, c, where=g)
            labels[g] = k
    return out.reshape(logits.shape[1:])
