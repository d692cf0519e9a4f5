"""Sliding window: known answers, identity/constant predictors, and bit parity with nnunetv2."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from totalseg.errors import ConfigError, InputError, ModelError
from totalseg.inference.sliding_window import (
    WindowOptions,
    gaussian_importance,
    n_tiles,
    predict_sliding_window,
    tile_grid,
    tile_starts,
)

swp = pytest.importorskip("nnunetv2.inference.sliding_window_prediction")


class Tiled(nn.Module):
    """Returns the input repeated into `k` channels (scaled per channel): an identity predictor."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, :1] * (c + 1) for c in range(self.k)], dim=1)


class Constant(nn.Module):
    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = torch.tensor(values).view(1, -1, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.values.expand(x.shape[0], -1, *x.shape[2:]).clone()


@pytest.mark.parametrize(
    ("size", "patch", "step", "expected"),
    [(160, 128, 0.5, [0, 32]), (300, 128, 0.5, [0, 57, 115, 172]), (193, 128, 0.5, [0, 32, 65]),
     (128, 128, 0.5, [0]), (512, 128, 0.5, [0, 64, 128, 192, 256, 320, 384]),
     (300, 128, 0.8, [0, 86, 172])],
)  # fmt: skip
def test_tile_starts_known_answers_and_nnunet(size, patch, step, expected):
    assert tile_starts(size, patch, step) == expected
    assert (
        tile_starts(size, patch, step)
        == swp.compute_steps_for_sliding_window((size,), (patch,), step)[0]
    )


def test_tile_grid_order_is_x_outer_z_inner():
    grid = tile_grid((40, 30, 20), (20, 20, 20), 0.5)
    starts = [tuple(s.start for s in t) for t in grid]
    assert starts == sorted(starts) and starts[:2] == [(0, 0, 0), (0, 10, 0)]
    assert n_tiles((40, 30, 20), WindowOptions((20, 20, 20))) == len(grid) == 3 * 2 * 1


def test_tile_starts_rejects_short_axis():
    with pytest.raises(InputError, match="at least as long as the patch"):
        tile_starts(10, 16, 0.5)


@pytest.mark.parametrize("patch", [(16, 24, 20), (128, 128, 128), (7, 9, 5)])
def test_gaussian_is_nnunets(patch):
    expected = swp.compute_gaussian(patch, 1.0 / 8, 10, device=torch.device("cpu"))
    got = gaussian_importance(patch)
    assert got.dtype == torch.float16 and torch.equal(got, expected)
    assert float(got.min()) > 0


@pytest.mark.parametrize("parity", [False, True])
def test_identity_predictor_returns_input(parity):
    x = torch.randn(1, 37, 21, 50)  # y smaller than the patch: padded and cut back
    opts = WindowOptions((16, 24, 20), 0.5, None, parity=parity, accumulate_fp32=not parity)
    out = predict_sliding_window(Tiled(3), x, opts)
    assert out.shape == (3, 37, 21, 50)
    assert out.dtype == (torch.float16 if parity else torch.float32)
    # parity's fp16 products underflow where only Gaussian tails (weight ~1e-7) cover a voxel
    covered = _weight_sum((37, 21, 50), opts) > (1e-2 if parity else 0)
    tol = 2e-2 if parity else 1e-5
    for c in range(3):
        torch.testing.assert_close(
            out[c][covered].float(), x[0][covered] * (c + 1), rtol=tol, atol=tol
        )
    assert float(covered.float().mean()) > (0.7 if parity else 0.999)


def _weight_sum(shape, opts: WindowOptions) -> torch.Tensor:
    padded = [max(s, p) for s, p in zip(shape, opts.patch_size, strict=True)]
    total = torch.zeros(padded, dtype=torch.float64)
    g = gaussian_importance(opts.patch_size, dtype=torch.float64)
    for tile in tile_grid(padded, opts.patch_size, opts.tile_step):
        total[tile] += g
    lo = [(p - s) // 2 for s, p in zip(shape, padded, strict=True)]
    return total[tuple(slice(a, a + s) for a, s in zip(lo, shape, strict=True))]


def test_constant_predictor_with_mirroring_and_batches():
    x = torch.zeros(1, 30, 30, 30)
    opts = WindowOptions(
        (16, 16, 16), 0.5, (0, 1, 2), batch_size=5, channels_last=True, accumulate_fp32=True
    )
    out = predict_sliding_window(Constant([1.0, -2.0, 0.5]), x, opts)
    expected = torch.tensor([1.0, -2.0, 0.5]).view(3, 1, 1, 1).expand(3, 30, 30, 30)
    torch.testing.assert_close(out, expected)


def test_batch_size_does_not_change_fast_results():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 3, 3, padding=1), nn.InstanceNorm3d(3, affine=True)).eval()
    x = torch.randn(1, 30, 26, 22)
    one = predict_sliding_window(
        net, x, WindowOptions((16, 16, 16), 0.5, batch_size=1, accumulate_fp32=True)
    )
    four = predict_sliding_window(
        net, x, WindowOptions((16, 16, 16), 0.5, batch_size=4, accumulate_fp32=True)
    )
    torch.testing.assert_close(one, four, rtol=1e-5, atol=1e-5)


def test_progress_callback_counts_tiles():
    seen: list[tuple[int, int]] = []
    opts = WindowOptions((16, 16, 16), 0.5, batch_size=2)
    predict_sliding_window(
        Tiled(2), torch.zeros(1, 30, 30, 20), opts, progress=lambda d, t: seen.append((d, t))
    )
    total = n_tiles((30, 30, 20), opts)
    assert seen[-1] == (total, total) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def _unet(n_classes: int = 3) -> nn.Module:
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    torch.manual_seed(0)
    net = PlainConvUNet(
        1, 3, (4, 8, 16), nn.Conv3d, 3, (1, 2, 2), (2, 2, 2), n_classes, (2, 2), True,
        nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, None, None, nn.LeakyReLU,
        {"inplace": True},
    )  # fmt: skip
    for p in net.parameters():
        nn.init.normal_(p, std=0.3)
    return net.eval()


@pytest.mark.parametrize("mirror_axes", [None, (0, 1, 2)])
def test_parity_mode_is_bit_exact_with_nnunet(mirror_axes):
    from types import SimpleNamespace

    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    net = _unet()
    ref = nnUNetPredictor(
        tile_step_size=0.5,
        use_mirroring=True,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        verbose=False,
        allow_tqdm=False,
    )
    ref.network = net
    ref.configuration_manager = SimpleNamespace(patch_size=[16, 24, 20])
    ref.label_manager = SimpleNamespace(num_segmentation_heads=3)
    ref.allowed_mirroring_axes = mirror_axes
    x = torch.randn(1, 37, 21, 50, generator=torch.Generator().manual_seed(1))
    expected = ref.predict_sliding_window_return_logits(x)
    got = predict_sliding_window(net, x, WindowOptions((16, 24, 20), 0.5, mirror_axes, parity=True))
    assert got.dtype == torch.float16 and torch.equal(got, expected)


def test_fast_mode_matches_parity_per_class():
    net = _unet()
    x = torch.randn(1, 60, 64, 50, generator=torch.Generator().manual_seed(2))
    parity = predict_sliding_window(net, x, WindowOptions((16, 24, 20), 0.5, parity=True))
    fast = predict_sliding_window(
        net, x, WindowOptions((16, 24, 20), 0.5, batch_size=3, channels_last=True)
    )
    assert fast.dtype == torch.float16
    a, b = parity.argmax(0), fast.argmax(0)
    for c in range(3):
        both = int(((a == c) & (b == c)).sum())
        total = int((a == c).sum() + (b == c).sum())
        assert total == 0 or 2 * both / total >= 0.999


def test_fp32_accumulation_differs_from_parity_only_where_fp16_loses_precision():
    """fp32 accumulation flips the argmax only at parity's fp16 ties, almost all at voxels covered
    only by Gaussian tails (total weight < 0.02, where parity's fp16 products underflow)."""
    net = _unet()
    x = torch.randn(1, 60, 64, 50, generator=torch.Generator().manual_seed(2))
    opts = WindowOptions((16, 24, 20), 0.5, parity=True)
    parity = predict_sliding_window(net, x, opts)
    fast = predict_sliding_window(
        net, x, WindowOptions((16, 24, 20), 0.5, batch_size=4, accumulate_fp32=True)
    )
    flips = parity.argmax(0) != fast.argmax(0)
    assert float(flips.float().mean()) < 1e-3
    top2 = torch.topk(parity.float(), 2, dim=0).values
    tied = (top2[0] - top2[1]) == 0
    assert float(tied[flips].float().mean()) > 0.9
    low_weight = _weight_sum((60, 64, 50), opts) < 0.02
    assert float(low_weight[flips].float().mean()) > 0.9
    torch.testing.assert_close(
        fast[:, ~low_weight], parity[:, ~low_weight].float(), atol=2e-2, rtol=1e-2
    )


def test_errors():
    with pytest.raises(ConfigError, match="Expected a 3D patch size"):
        WindowOptions((16, 16))
    with pytest.raises(ConfigError, match="Expected a tile step in"):
        WindowOptions((16, 16, 16), tile_step=0)
    with pytest.raises(ConfigError, match="Expected batch size 1 in parity mode"):
        WindowOptions((16, 16, 16), parity=True, batch_size=2)
    with pytest.raises(ConfigError, match="Expected nnU-Net's arithmetic in parity mode"):
        WindowOptions((16, 16, 16), parity=True, accumulate_fp32=True)
    with pytest.raises(ConfigError, match="Expected mirror axes among"):
        WindowOptions((16, 16, 16), mirror_axes=(3,))
    with pytest.raises(InputError, match=r"Expected a \(C, X, Y, Z\) tensor"):
        predict_sliding_window(Tiled(), torch.zeros(8, 8, 8), WindowOptions((8, 8, 8)))
    with pytest.raises(ModelError, match="Expected 5 output channels"):
        predict_sliding_window(
            Tiled(3), torch.zeros(1, 8, 8, 8), WindowOptions((8, 8, 8)), n_classes=5
        )
    with pytest.raises(ModelError, match=r"Expected the network to return \(N, K, X, Y, Z\)"):
        predict_sliding_window(lambda x: x[0], torch.zeros(1, 8, 8, 8), WindowOptions((8, 8, 8)))


def test_network_errors_propagate_and_stop_the_tile_thread():
    import threading

    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        predict_sliding_window(broken, torch.zeros(1, 40, 40, 40), WindowOptions((16, 16, 16)))
    assert not [t for t in threading.enumerate() if t.name == "totalseg-tiles" and t.is_alive()]
