"""Predictor (folds, devices, options) and nnU-Net case pre/post-processing vs nnunetv2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from totalseg.errors import ConfigError, InputError
from totalseg.inference.device import resolve_device, torch_threads
from totalseg.inference.nnunet import (
    export_labels,
    from_array_order,
    header_spacing,
    preprocess_case,
    to_array_order,
)
from totalseg.inference.predictor import InferenceOptions, Predictor


def _case(seed: int = 0, shape=(30, 19, 41)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 300, size=shape).astype(np.float32)
    data[:3] = 0  # a zero slab: nnU-Net crops it
    return data


def test_array_order_round_trip_and_known_answer():
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    kji, spacing = to_array_order(array, (0.8, 1.2, 3.0))
    assert kji.shape == (4, 3, 2) and spacing == (3.0, 1.2, 0.8)
    assert kji[3, 2, 1] == array[1, 2, 3]
    np.testing.assert_array_equal(from_array_order(kji), array)
    with pytest.raises(InputError, match="Expected a 3D array and 3 spacings"):
        to_array_order(array[0], (1.0, 1.0))


def test_header_spacing_is_float32_rounded():
    affine = np.diag([0.8, -1.2, 3.0, 1.0])
    assert header_spacing(affine) == (float(np.float32(0.8)), float(np.float32(1.2)), 3.0)


@pytest.mark.parametrize("transpose", [(0, 1, 2), (2, 0, 1)])
def test_preprocess_and_export_bit_exact_with_nnunet(tiny_folder, nnunet_predictor, transpose):
    import json

    from nnunetv2.inference.export_prediction import (
        convert_predicted_logits_to_segmentation_with_correct_shape as nn_export,
    )
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    from totalseg.models.folder import load_model_folder

    model = load_model_folder(tiny_folder, folds=(0,))
    plans = json.loads((tiny_folder / "plans.json").read_text())
    plans["transpose_forward"], plans["transpose_backward"] = (
        list(transpose),
        list(np.argsort(transpose)),
    )
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from totalseg.models.plan import read_plan

    plan = read_plan(plans, "3d_fullres")
    pm = PlansManager(plans)
    cm = pm.get_configuration("3d_fullres")
    data = _case()[None]
    spacing = (3.0, 0.8, 1.1)  # separate-z on axis 0 (3.75 > 3)
    expected, _, props = DefaultPreprocessor(verbose=False).run_case_npy(
        data.copy(),
        None,
        {"spacing": list(spacing)},
        pm,
        cm,
        json.loads((tiny_folder / "dataset.json").read_text()),
    )
    got, geometry = preprocess_case(data, spacing, plan)
    np.testing.assert_array_equal(got, expected)
    assert geometry.cropped_shape == tuple(props["shape_after_cropping_and_before_resampling"])
    logits = torch.randn((5, *got.shape[1:]), generator=torch.Generator().manual_seed(0)).half()
    lm = pm.get_label_manager(json.loads((tiny_folder / "dataset.json").read_text()))
    seg = nn_export(logits, pm, cm, lm, props)
    np.testing.assert_array_equal(export_labels(logits.numpy(), geometry, plan), seg)
    assert model.plan.transpose_forward == (0, 1, 2)


def test_preprocess_rejects_wrong_channel_count(tiny_folder):
    from totalseg.models.folder import load_model_folder

    plan = load_model_folder(tiny_folder, folds=(0,)).plan
    with pytest.raises(InputError, match=r"Expected 1 input channel\(s\) of 3D data"):
        preprocess_case(np.zeros((2, 8, 8, 8)), (1.0, 1.0, 1.0), plan)


@pytest.mark.parametrize("mirroring", [False, True])
def test_two_fold_parity_logits_bit_exact(tiny_folder, nnunet_predictor, mirroring):
    from totalseg.models.folder import load_model_folder

    reference = nnunet_predictor(tiny_folder, mirroring=mirroring, folds=(0, 1))
    data = np.random.default_rng(1).normal(size=(1, 20, 30, 26)).astype(np.float32)
    expected = reference.predict_logits_from_preprocessed_data(torch.from_numpy(data))
    model = load_model_folder(tiny_folder, folds=(0, 1))
    seen = []
    predictor = Predictor(model, InferenceOptions(device="cpu", parity=True, mirroring=mirroring))
    got = predictor.predict_logits(data, progress=lambda d, t: seen.append((d, t)))
    assert got.dtype == torch.float16 and torch.equal(got, expected)
    assert seen[-1] == (2 * predictor.n_tiles((20, 30, 26)),) * 2
    fast = Predictor(model, InferenceOptions(device="cpu", mirroring=mirroring, channels_last=True))
    got_fast = fast.predict_logits(data)
    assert got_fast.dtype == torch.float16
    assert float((got_fast.argmax(0) != expected.argmax(0)).float().mean()) < 1e-3
    fp32 = Predictor(
        model, InferenceOptions(device="cpu", mirroring=mirroring, accumulate_fp32=True)
    )
    got_fp32 = fp32.predict_logits(data)
    assert got_fp32.dtype == torch.float32
    assert float((got_fp32.argmax(0) != expected.argmax(0)).float().mean()) < 5e-3


def test_predictor_rejects_wrong_channels(tiny_folder):
    from totalseg.models.folder import load_model_folder

    predictor = Predictor(
        load_model_folder(tiny_folder, folds=(0,)), InferenceOptions(device="cpu")
    )
    with pytest.raises(
        InputError, match=r"Expected 1 input channel\(s\) as a \(C, X, Y, Z\) array"
    ):
        predictor.predict_logits(np.zeros((2, 16, 24, 20), dtype=np.float32))


def test_inference_options_validation():
    with pytest.raises(ConfigError, match="Expected a tile step in"):
        InferenceOptions(tile_step=1.5)
    with pytest.raises(ConfigError, match="Expected a tile batch size >= 1"):
        InferenceOptions(batch_size=0)
    with pytest.raises(ConfigError, match="Expected batch size 1 in parity mode"):
        InferenceOptions(parity=True, batch_size=4)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="Expected a device among"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_cuda_is_an_error_not_a_fallback():
    with pytest.raises(ConfigError, match=r"Expected an available CUDA device, got 'cuda:1'"):
        resolve_device("cuda:1")
    with pytest.raises(ConfigError, match="Expected an available CUDA device"):
        resolve_device("gpu")


def test_torch_threads_restores():
    before = torch.get_num_threads()
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="Expected at least 1 thread"), torch_threads(0):
        pass
