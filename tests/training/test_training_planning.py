"""Planning: topology, memory budget, CT statistics, plans.json readable by nnunetv2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from totalseg.errors import ConfigError
from totalseg.models.plan import IntensityProperties
from totalseg.training.cache import build_cache
from totalseg.training.dataset import read_dataset
from totalseg.training.planning import (
    _architecture,
    count_parameters,
    estimate_training_memory_bytes,
    network_topology,
    plan_training,
    read_training_plan,
    write_training_plan,
)


@pytest.fixture
def cached(public_dataset: Path, cache_dir: Path):
    ds = read_dataset(public_dataset)
    classes = dict(ds.label_names)
    return classes, build_cache(ds, classes=classes, spacing_mm=1.5, cache_dir=cache_dir)


def test_topology_isotropic_and_anisotropic() -> None:
    strides, kernels, patch = network_topology((3.0, 3.0, 3.0), (100, 120, 90))
    assert strides == ((1, 1, 1),) + ((2, 2, 2),) * 4 and kernels == ((3, 3, 3),) * 5
    assert patch == (112, 128, 96)  # padded to multiples of 2**4
    strides, kernels, patch = network_topology((5.0, 1.0, 1.0), (40, 200, 200))
    assert strides[1] == (1, 2, 2) and strides[3] == (2, 2, 2)
    assert kernels[0] == (1, 3, 3) and kernels[-1] == (3, 3, 3)
    assert len(network_topology((1.5,) * 3, (256,) * 3, max_stages=4)[0]) == 4


def test_parameter_count_matches_the_network() -> None:
    from totalseg.models.unet import build_network

    strides, kernels, _ = network_topology((1.5,) * 3, (64, 48, 80))
    arch = _architecture(strides, kernels, base_features=8, max_features=64, n_conv=2)
    net = build_network(arch, 1, 7, deep_supervision=True)
    unique = {id(p): p.numel() for p in net.parameters()}
    assert count_parameters(arch, 7) == sum(unique.values())


def test_memory_estimate_grows_with_patch_batch_and_classes() -> None:
    strides, kernels, _ = network_topology((3.0,) * 3, (64,) * 3)
    arch = _architecture(strides, kernels, base_features=16, max_features=320, n_conv=2)

    def est(patch=(64,) * 3, b=2, c=10):
        return estimate_training_memory_bytes(arch, patch, n_classes=c, batch_size=b)

    assert est() < est(b=4) and est() < est(c=100) and est((32,) * 3) < est()
    cuda = estimate_training_memory_bytes(
        arch, (128,) * 3, n_classes=10, batch_size=2, device_kind="cuda"
    )
    assert cuda < est((128,) * 3)  # mixed precision stores smaller activations


def test_budget_limits_the_patch(cached) -> None:
    classes, cases = cached
    big = plan_training(cases, classes=classes, memory_budget_gb=8, base_features=8)
    small = plan_training(cases, classes=classes, memory_budget_gb=0.41, base_features=8)
    assert np.prod(small.patch_size) < np.prod(big.patch_size)
    assert small.estimated_memory_gb <= 0.41
    assert big.patch_size == (20, 28, 24)  # the median shape, divisible by the stride 4
    with pytest.raises(ConfigError, match="memory budget that fits"):
        plan_training(cases, classes=classes, memory_budget_gb=0.01)


def test_ct_statistics(cached) -> None:
    classes, cases = cached
    plan = plan_training(cases, classes=classes, patch_size=(16, 16, 16), base_features=4)
    ip = plan.intensity
    assert 50 < ip.mean < 200 and ip.percentile_00_5 < ip.median < ip.percentile_99_5
    stats = IntensityProperties.from_samples(np.arange(1001.0))
    assert stats.mean == 500 and stats.percentile_00_5 == 5 and stats.percentile_99_5 == 995
    with pytest.raises(ConfigError, match="labelled voxels"):
        IntensityProperties.from_samples(np.array([]))


def test_plans_json_loads_in_nnunetv2(cached, tmp_path: Path) -> None:
    pm_mod = pytest.importorskip("nnunetv2.utilities.plans_handling.plans_handler")
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from totalseg.models.unet import build_network

    classes, cases = cached
    plan = plan_training(
        cases,
        classes=classes,
        patch_size=(16, 24, 16),
        base_features=4,
        max_features=16,
        batch_size=3,
    )
    write_training_plan(plan, tmp_path, n_training=4)
    plans = json.loads((tmp_path / "plans.json").read_text())
    dataset = json.loads((tmp_path / "dataset.json").read_text())
    pm = pm_mod.PlansManager(plans)
    cm = pm.get_configuration("3d_fullres")
    assert list(cm.patch_size) == [16, 24, 16] and cm.batch_size == 3
    assert cm.normalization_schemes == ["CTNormalization"] and cm.batch_dice is False
    lm = pm.get_label_manager(dataset)
    assert lm.num_segmentation_heads == 4
    theirs = get_network_from_plans(
        cm.network_arch_class_name,
        cm.network_arch_init_kwargs,
        cm.network_arch_init_kwargs_req_import,
        1,
        lm.num_segmentation_heads,
        deep_supervision=True,
    )
    ours = build_network(plan.architecture, 1, 4, deep_supervision=True)
    mine, other = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(other)
    assert all(mine[k].shape == other[k].shape for k in mine)
    theirs.load_state_dict(mine)
    x = torch.randn(1, 1, 16, 24, 16)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        assert torch.allclose(ours(x)[0], theirs(x)[0], atol=1e-5)
    assert plans["image_reader_writer"] == "NibabelIOWithReorient"
    assert dataset["labels"] == {"background": 0, "spleen": 1, "kidney_left": 2, "liver": 3}


def test_plan_round_trip(cached, tmp_path: Path) -> None:
    classes, cases = cached
    plan = plan_training(cases, classes=classes, patch_size=(16, 16, 16), base_features=4)
    back = read_training_plan(write_training_plan(plan, tmp_path))
    assert back.plans_json() == plan.plans_json() and back.classes == plan.classes
    with pytest.raises(ConfigError, match="patch size of 3 positive ints"):
        plan_training(cases, classes=classes, patch_size=(16, 16))
    with pytest.raises(ConfigError, match="readable JSON"):
        read_training_plan(tmp_path / "nothing")
