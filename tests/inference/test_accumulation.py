"""The lean accumulation and export: bit for bit the arithmetic they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from totalseg.errors import InputError
from totalseg.inference.argmax import argmax_classes
from totalseg.inference.sliding_window import _add_tile
from totalseg.inference.tiles import gaussian_importance


@pytest.mark.parametrize(
    ("pred_dtype", "acc_dtype"),
    [(torch.float32, torch.float16), (torch.float16, torch.float16),  # CPU; CUDA autocast
     (torch.float32, torch.float32), (torch.float16, torch.float32)],  # fp32 accumulation
)  # fmt: skip
def test_add_tile_equals_nnunets_multiply_then_add(pred_dtype, acc_dtype):
    torch.manual_seed(0)
    patch = (12, 10, 8)
    weight = gaussian_importance(patch, dtype=acc_dtype)
    fp32 = acc_dtype == torch.float32
    expected = torch.zeros(5, 20, 18, 16, dtype=acc_dtype)
    got = expected.clone()
    for start in ((0, 0, 0), (4, 3, 2), (8, 8, 8)):
        tile = (slice(None), *(slice(a, a + p) for a, p in zip(start, patch, strict=True)))
        pred = (torch.randn(5, *patch) * 30).to(pred_dtype)
        p = pred.clone().to(torch.float32) if fp32 else pred.clone()
        p *= weight  # the code this replaces (and nnU-Net's)
        expected[tile] += p
        _add_tile(got[tile], pred.clone(), (weight, weight.float()), fp32=fp32)
    assert torch.equal(expected, got)


def test_argmax_equals_numpy_with_ties_nan_and_inf():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(7, 40, 33, 51)) * 3).astype(np.float16)
    logits[3:6, :5] = logits[2, :5]  # exact ties: the lowest index wins
    logits[:, 6] = 0  # all classes tied
    logits[4, 10, 3, 3] = np.nan
    logits[5, 20, 3, 3] = np.inf
    logits[1, 30, 3, 3] = -np.inf
    got = argmax_classes(logits)
    assert got.dtype == np.uint8
    assert np.array_equal(got, logits.argmax(0))
    f32 = logits.astype(np.float32)[:, :3]
    assert np.array_equal(argmax_classes(f32, np.uint16), f32.argmax(0))


def test_argmax_errors():
    with pytest.raises(InputError, match="holds 300 classes"):
        argmax_classes(np.zeros((300, 2, 2), dtype=np.float16))
    with pytest.raises(InputError, match=r"\(classes, \.\.\.\)"):
        argmax_classes(np.zeros(3, dtype=np.float16))


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_logits_are_an_error(bad):
    from totalseg.errors import ModelError
    from totalseg.inference.sliding_window import WindowOptions, predict_sliding_window

    def net(x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 2, *x.shape[2:])
        out[:, 1, 3, 3, 3] = bad
        return out

    with pytest.raises(ModelError, match="inf or NaN"):
        predict_sliding_window(net, torch.zeros(1, 8, 8, 8), WindowOptions((8, 8, 8)))


def test_resident_export_equals_the_numpy_export(tiny_folder):
    """The GPU-resident path (argmax where the logits are, labels only to the CPU), run here
    on CPU tensors: the same labels as nnU-Net's numpy export."""
    from totalseg.inference.nnunet import CaseGeometry
    from totalseg.inference.predictor import _argmax_in_slabs, labels_from_logits
    from totalseg.models.folder import load_model_folder
    from totalseg.preprocess.crop import CropBox

    plan = load_model_folder(tiny_folder).plan
    logits = (torch.randn(5, 11, 9, 13) * 2).half()
    logits[2:4, :3] = logits[1, :3]  # ties
    crop = CropBox((1, 0, 2), (12, 9, 15), (14, 9, 16))
    geometry = CaseGeometry((1.0, 1.0, 1.0), crop, (11, 9, 13))
    resident = labels_from_logits(logits, geometry, plan, on_device=True)
    numpy_way = labels_from_logits(logits, geometry, plan, on_device=False)
    assert resident.dtype == numpy_way.dtype == np.uint8
    assert np.array_equal(resident, numpy_way)
    slabs = _argmax_in_slabs(logits, voxels_per_slab=300)  # several slabs
    assert np.array_equal(slabs.numpy(), logits.numpy().argmax(0))


def test_keep_on_device_returns_the_same_logits():
    from totalseg.inference.sliding_window import WindowOptions, predict_sliding_window

    torch.manual_seed(0)
    net = torch.nn.Conv3d(1, 3, 3, padding=1).eval()
    x = torch.randn(1, 20, 18, 17)
    opts = WindowOptions((16, 16, 16))
    kept = predict_sliding_window(net, x, opts, keep_on_device=True)
    assert torch.equal(kept, predict_sliding_window(net, x, opts))
