"""Fixtures for end-to-end tests: a weights home with tiny random-init models for the `total`,
`total-fast` and `total-fastest` sets, nnunetv2 as the reference engine, synthetic CT volumes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

TINY_ARCH = {
    "features_per_stage": (4, 8, 16),
    "strides": ((1, 1, 1), (2, 2, 2), (2, 2, 2)),
    "kernel_sizes": ((3, 3, 3),) * 3,
}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _labels_of(dataset_id: int) -> list[str]:
    from totalseg.anatomy import class_map, part_maps

    parts = part_maps("v2")
    if dataset_id in parts:
        return list(parts[dataset_id].values())
    return list(class_map("v2").values())


@pytest.fixture(scope="session")
def weights_home(tmp_path_factory) -> Path:
    """`<home>/weights/<official folder>/<model>/` for 291-295 (1.5 mm), 297 (3 mm), 298 (6 mm)."""
    from totalseg.models.tasks import get_task, weights_entry
    from totalseg.models.writer import random_model_folder

    home = tmp_path_factory.mktemp("home")
    for task in ("total", "total-fast", "total-fastest"):
        spec = get_task(task)
        for dataset_id in spec.datasets:
            entry = weights_entry(dataset_id)
            names = _labels_of(dataset_id)
            random_model_folder(
                home / "weights" / entry.folder / entry.model, n_classes=len(names),
                patch_size=(24, 24, 24), spacing_mm=spec.spacing_mm, seed=dataset_id,
                label_names=names, trainer_name=entry.trainer, **TINY_ARCH,
            )  # fmt: skip
    return home


@pytest.fixture
def nnunet_predictor(monkeypatch):
    """A factory for nnunetv2's nnUNetPredictor on a folder (CPU, sequential, no tqdm).

    nnunetv2's trainer lookup imports every trainer module; one pulls timm/torchvision whose
    compiled ops do not load here, so the lookup returns `nnUNetTrainer` (all stock trainers,
    the TotalSegmentator ones included, build the same network).
    """
    predict = pytest.importorskip("nnunetv2.inference.predict_from_raw_data")
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    monkeypatch.setattr(predict, "recursive_find_trainer_class_by_name", lambda name: nnUNetTrainer)

    def make(folder: Path, *, tile_step: float = 0.5, mirroring: bool = False):
        p = predict.nnUNetPredictor(
            tile_step_size=tile_step, use_gaussian=True, use_mirroring=mirroring,
            perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
            verbose_preprocessing=False, allow_tqdm=False,
        )  # fmt: skip
        p.initialize_from_trained_model_folder(str(folder), use_folds=None)
        return p

    return make


@pytest.fixture
def run_nnunet(nnunet_predictor, tmp_path):
    """nnunetv2 on a NIfTI file, folder to folder as the reference tool runs it: label array."""

    def run(folder: Path, image_path: Path, *, tile_step: float = 0.5, mirroring: bool = False):
        predictor = nnunet_predictor(folder, tile_step=tile_step, mirroring=mirroring)
        out = tmp_path / f"nnunet_out_{len(list(tmp_path.iterdir()))}"
        out.mkdir()
        predictor.predict_from_files_sequential([[str(image_path)]], str(out), False, True)
        (result,) = [p for p in out.iterdir() if p.name.endswith(".nii.gz")]
        return np.asarray(nib.load(result).dataobj)

    return run


def body_phantom(shape, seed: int = 0) -> np.ndarray:
    """A CT-like int16 volume: air, a soft-tissue ellipsoid body, a few dense blobs, noise."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    body = (grid**2 / np.array([0.8, 0.7, 0.9])[:, None, None, None] ** 2).sum(0) < 1
    ct = np.where(body, 40.0, -1000.0)
    for _ in range(6):
        center = rng.uniform(-0.5, 0.5, size=3)
        radius = rng.uniform(0.1, 0.3)
        blob = ((grid - center[:, None, None, None]) ** 2).sum(0) < radius**2
        ct[blob & body] = rng.choice([300.0, 900.0, -80.0, 120.0])
    ct += rng.normal(0, 20, size=shape)
    return ct.astype(np.int16)


def axis_affine(codes: str, spacing_mm=(1.5, 0.8, 3.0), origin_mm=(10.0, -20.0, 30.0)):
    """An axis-aligned affine whose i, j, k axes point along the axcodes (e.g. 'PIR')."""
    from nibabel.orientations import axcodes2ornt

    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for i, (axis, flip) in enumerate(axcodes2ornt(tuple(codes))):
        affine[int(axis), i] = flip * spacing_mm[i]
    affine[:3, 3] = origin_mm
    return affine


def oblique_affine(spacing_mm=(1.3, 0.9, 2.0)) -> np.ndarray:
    """Rotated 25 degrees about z, with flipped i and k axes."""
    a = np.deg2rad(25.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-1, 1, -1]) @ np.diag(spacing_mm)
    affine[:3, 3] = (12.0, -40.0, 7.0)
    return affine


@pytest.fixture
def affine_of():
    """`affine_of('PIR', spacing)` or `affine_of('oblique', spacing)`."""

    def make(codes: str, spacing_mm=(1.5, 0.8, 3.0)) -> np.ndarray:
        if codes == "oblique":
            return oblique_affine(spacing_mm)
        return axis_affine(codes, spacing_mm)

    return make


@pytest.fixture
def phantom():
    return body_phantom


def dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    x, y = a == label, b == label
    denom = int(x.sum() + y.sum())
    return 1.0 if denom == 0 else 2.0 * int((x & y).sum()) / denom


@pytest.fixture
def per_class_dice():
    def compute(a: np.ndarray, b: np.ndarray) -> dict[int, float]:
        labels = sorted((set(np.unique(a)) | set(np.unique(b))) - {0})
        return {int(v): dice(a, b, v) for v in labels}

    return compute


@pytest.fixture
def reference_api(weights_home, tmp_path, monkeypatch):
    """`totalsegmentator()` with its home in a temp folder, the weights of `weights_home`."""
    home = tmp_path / "ts_home"
    home.mkdir()
    (home / "config.json").write_text(
        json.dumps({"totalseg_id": "totalseg_TEST0000", "send_usage_stats": False,
                    "prediction_counter": 0})
    )  # fmt: skip
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(weights_home / "weights"))

    connect = socket.socket.connect

    def no_network(sock, address, *args):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"the reference tool tried to connect to {address}")
        return connect(sock, address, *args)  # multiprocessing's local (AF_UNIX) sockets

    monkeypatch.setattr(socket.socket, "connect", no_network)
    api = pytest.importorskip("totalsegmentator.python_api", reason="pip install -e '.[oracle]'")
    # nnunetv2's trainer lookup imports every trainer module, one of which needs torchvision ops
    # that this CPU venv lacks; all stock trainers build the same network for prediction.
    # The reference tool wraps the lookup in its own (custom trainers first), which calls the
    # original through its module global: that global is the one to replace.
    import totalsegmentator.nnunet as reference_nnunet
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    monkeypatch.setattr(
        reference_nnunet, "recursive_find_trainer_class_by_name", lambda name: nnUNetTrainer
    )

    def run(path, **kwargs) -> np.ndarray:
        img = api.totalsegmentator(
            path, None, ml=True, device="cpu", quiet=True, nr_thr_resamp=1, nr_thr_saving=1,
            **kwargs,
        )  # fmt: skip
        return np.asarray(img.dataobj)

    return run
