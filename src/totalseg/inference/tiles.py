"""nnU-Net's tile grid and Gaussian importance map, and the body-aware choice of tiles to run.

The grid never changes: zero padding up to the patch size (the extra half above), positions from
`np.round`, x-y-z order. Body-aware skipping only leaves out tiles that hold no voxel of a body
mask, so every body voxel keeps all of its covering tiles, visited in the same order: its
Gaussian-weighted sum is computed exactly as without skipping.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from totalseg.errors import InputError

__all__ = [
    "Tile",
    "body_tiles",
    "gaussian_importance",
    "n_grid_tiles",
    "pad_to_patch",
    "padded_shape",
    "tile_grid",
    "tile_starts",
]

Tile = tuple[slice, ...]


def tile_starts(size: int, patch: int, step: float) -> list[int]:
    """Start positions of tiles along one axis of (padded) length `size` (nnU-Net's rule)."""
    if size < patch:
        raise InputError(f"Expected an axis at least as long as the patch ({patch}), got {size}.")
    n = int(np.ceil((size - patch) / (patch * step))) + 1
    if n == 1:
        return [0]
    actual = (size - patch) / (n - 1)
    return [int(np.round(actual * i)) for i in range(n)]


def tile_grid(shape: Sequence[int], patch: Sequence[int], step: float) -> list[Tile]:
    """Spatial slices of every tile, x outer, z inner (nnU-Net's visiting order)."""
    starts = [tile_starts(s, p, step) for s, p in zip(shape, patch, strict=True)]
    return [
        tuple(slice(a, a + p) for a, p in zip(corner, patch, strict=True))
        for corner in itertools.product(*starts)
    ]


def padded_shape(shape: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    """The spatial shape after padding up to the patch size."""
    return tuple(max(int(s), int(p)) for s, p in zip(shape, patch, strict=True))


def _padding(shape: Sequence[int], patch: Sequence[int]) -> tuple[list[int], list[int]]:
    diff = [max(int(p) - int(s), 0) for s, p in zip(shape, patch, strict=True)]
    return [d // 2 for d in diff], [d // 2 + d % 2 for d in diff]


def pad_to_patch(data: torch.Tensor, patch: Sequence[int]) -> tuple[torch.Tensor, Tile]:
    """acvl_utils.pad_nd_image on (C, X, Y, Z): constant 0 up to the patch size, the extra half
    above; returns the padded tensor and the slices that cut the padding off again."""
    shape = data.shape[1:]
    below, above = _padding(shape, patch)
    unpad = tuple(slice(b, b + s) for b, s in zip(below, shape, strict=True))
    if not any(below) and not any(above):
        return data, unpad
    pads = [v for b, a in zip(below[::-1], above[::-1], strict=True) for v in (b, a)]
    return F.pad(data, pads, "constant", value=0), unpad


def body_tiles(
    shape: Sequence[int], patch: Sequence[int], step: float, body: np.ndarray | None
) -> list[Tile]:
    """The tiles of the padded grid of an unpadded spatial `shape` that hold a voxel of `body`
    (a boolean mask of `shape`), in grid order; every tile when `body` is None."""
    padded = padded_shape(shape, patch)
    tiles = tile_grid(padded, patch, step)
    if body is None:
        return tiles
    if tuple(body.shape) != tuple(int(s) for s in shape):
        raise InputError(
            f"Expected a body mask of the data's spatial shape {tuple(shape)}, got "
            f"{tuple(body.shape)}."
        )
    below, _ = _padding(shape, patch)
    full = np.zeros(padded, dtype=bool)
    full[tuple(slice(b, b + int(s)) for b, s in zip(below, shape, strict=True))] = body
    # a summed-volume table answers "any body voxel in this box" in O(1) per tile
    table = np.pad(full, [(1, 0)] * 3).cumsum(0, dtype=np.int64).cumsum(1).cumsum(2)
    return [t for t in tiles if _box_sum(table, t) > 0]


def _box_sum(table: np.ndarray, tile: Tile) -> int:
    (x0, x1), (y0, y1), (z0, z1) = ((s.start, s.stop) for s in tile)
    t = table
    return int(
        t[x1, y1, z1] - t[x0, y1, z1] - t[x1, y0, z1] - t[x1, y1, z0]
        + t[x0, y0, z1] + t[x0, y1, z0] + t[x1, y0, z0] - t[x0, y0, z0]
    )  # fmt: skip


def n_grid_tiles(shape: Sequence[int], patch: Sequence[int], step: float) -> int:
    """How many tiles nnU-Net's grid has for an unpadded spatial shape."""
    return math.prod(
        len(tile_starts(s, p, step)) for s, p in zip(padded_shape(shape, patch), patch, strict=True)
    )


@lru_cache(maxsize=8)
def _gaussian_f64(patch: tuple[int, ...]) -> np.ndarray:
    tmp = np.zeros(patch)
    tmp[tuple(p // 2 for p in patch)] = 1
    g = gaussian_filter(tmp, [p / 8 for p in patch], 0, mode="constant", cval=0)
    g /= np.max(g) / 10
    g.flags.writeable = False
    return g


def gaussian_importance(
    patch: Sequence[int], *, dtype: torch.dtype = torch.float16, device: torch.device | None = None
) -> torch.Tensor:
    """nnU-Net's `compute_gaussian(patch, 1/8, value_scaling_factor=10)` in `dtype`.

    Entries that are 0 after the cast are replaced by the smallest nonzero entry.
    """
    g = torch.from_numpy(_gaussian_f64(tuple(int(p) for p in patch)).copy())
    g = g.to(device=device or torch.device("cpu"), dtype=dtype)
    zero = g == 0
    if bool(zero.any()):
        g[zero] = torch.min(g[~zero])
    return g
