"""Body-aware tile skipping: the tiles left out hold no body voxel, so body voxels keep every
covering tile and get bit-identical logits; uncovered voxels become background."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from totalseg.errors import InputError, ModelError
from totalseg.inference.sliding_window import (
    WindowOptions,
    WindowStats,
    n_tiles,
    predict_sliding_window,
)
from totalseg.inference.tiles import body_tiles, padded_shape, tile_grid


def _net(n_classes: int = 4) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv3d(1, 6, 3, padding=1), nn.LeakyReLU(), nn.Conv3d(6, n_classes, 3, padding=1)
    ).eval()


def _ball(shape, center, radius) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum((g - c) ** 2 for g, c in zip(grid, center, strict=True)) <= radius**2


@pytest.mark.parametrize("shape", [(50, 37, 29), (12, 40, 33)])  # the second one is padded
def test_body_tiles_are_exactly_the_tiles_holding_a_body_voxel(shape):
    patch, step = (16, 16, 16), 0.5
    body = _ball(shape, (8, 30, 5), 6)
    tiles = body_tiles(shape, patch, step, body)
    padded = padded_shape(shape, patch)
    lo = [(p - s) // 2 for s, p in zip(shape, padded, strict=True)]
    full = np.zeros(padded, dtype=bool)
    full[tuple(slice(a, a + s) for a, s in zip(lo, shape, strict=True))] = body
    expected = [t for t in tile_grid(padded, patch, step) if full[t].any()]
    assert tiles == expected
    assert 0 < len(tiles) < len(tile_grid(padded, patch, step))
    # every body voxel is covered by as many run tiles as grid tiles (its sum is complete)
    all_cover, run_cover = np.zeros(padded, int), np.zeros(padded, int)
    for t in tile_grid(padded, patch, step):
        all_cover[t] += 1
    for t in tiles:
        run_cover[t] += 1
    assert np.array_equal(all_cover[full], run_cover[full]) and (run_cover[full] > 0).all()
    assert (run_cover < all_cover).any()


@pytest.mark.parametrize(
    ("parity", "fp32", "batch"), [(True, False, 1), (False, False, 1), (False, True, 3)]
)
def test_body_voxels_get_identical_logits_and_the_rest_background(parity, fp32, batch):
    shape = (60, 44, 38)
    x = torch.randn(1, *shape)
    body = _ball(shape, (15, 12, 30), 9)
    opts = WindowOptions((16, 16, 16), 0.5, parity=parity, accumulate_fp32=fp32, batch_size=batch)
    full_stats, skip_stats = WindowStats(), WindowStats()
    full = predict_sliding_window(_net(), x, opts, n_classes=4, stats=full_stats)
    skipped = predict_sliding_window(_net(), x, opts, n_classes=4, body=body, stats=skip_stats)
    mask = torch.from_numpy(body)
    assert torch.equal(full[:, mask], skipped[:, mask])  # bit for bit
    assert skip_stats.n_tiles_run == n_tiles(shape, opts, body) < full_stats.n_tiles_run
    assert skip_stats.n_tiles_run + skip_stats.n_tiles_skipped == full_stats.n_tiles_run
    assert full_stats.n_tiles_skipped == 0
    labels = skipped.float().argmax(0)
    assert not labels[~mask].bool().all()  # some voxels outside every run tile...
    uncovered = (skipped == torch.tensor([1, 0, 0, 0]).view(4, 1, 1, 1).to(skipped)).all(0)
    assert uncovered.any() and not uncovered[mask].any()
    assert (labels[uncovered] == 0).all()  # ... are background
    assert torch.isfinite(skipped).all()


def test_progress_counts_only_the_tiles_run():
    shape = (60, 44, 38)
    body = _ball(shape, (50, 40, 30), 4)
    seen: list[tuple[int, int]] = []
    opts = WindowOptions((16, 16, 16), 0.5)
    predict_sliding_window(
        _net(), torch.zeros(1, *shape), opts, n_classes=4, body=body,
        progress=lambda d, t: seen.append((d, t)),
    )  # fmt: skip
    total = n_tiles(shape, opts, body)
    assert seen[-1] == (total, total) and len(seen) == total < n_tiles(shape, opts)


def test_no_body_at_all_gives_all_background_and_runs_nothing():
    shape = (30, 20, 20)
    calls: list[int] = []

    def net(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.zeros(t.shape[0], 3, *t.shape[2:])

    opts = WindowOptions((16, 16, 16), 0.5)
    empty = np.zeros(shape, dtype=bool)
    out = predict_sliding_window(net, torch.zeros(1, *shape), opts, n_classes=3, body=empty)
    assert not calls and out.shape == (3, *shape) and (out.float().argmax(0) == 0).all()
    with pytest.raises(ModelError, match="pass n_classes"):
        predict_sliding_window(net, torch.zeros(1, *shape), opts, body=empty)


def test_body_mask_of_the_wrong_shape_is_refused():
    with pytest.raises(InputError, match="body mask of the data's spatial shape"):
        predict_sliding_window(
            _net(), torch.zeros(1, 20, 20, 20), WindowOptions((16, 16, 16)),
            body=np.ones((20, 20, 19), dtype=bool),
        )  # fmt: skip
