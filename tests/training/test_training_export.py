"""Export: the model folder loads in totalseg's engine and in nnunetv2, with identical output."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from totalseg.errors import ConfigError, ModelError
from totalseg.training.cache import build_cache
from totalseg.training.config import TrainingConfig
from totalseg.training.dataset import read_dataset
from totalseg.training.export import export_model
from totalseg.training.planning import plan_training
from totalseg.training.trainer import Trainer


@pytest.fixture
def run_dir(public_dataset: Path, cache_dir: Path, tmp_path: Path) -> Path:
    torch.set_num_threads(1)
    ds = read_dataset(public_dataset)
    classes = dict(ds.label_names)
    cases = build_cache(ds, classes=classes, spacing_mm=(1.5, 1.5, 2.0), cache_dir=cache_dir)
    plan = plan_training(
        cases, classes=classes, patch_size=(16, 16, 16), base_features=4, max_features=16
    )
    config = TrainingConfig(epochs=1, iters_per_epoch=2, n_val_patches=2, device="cpu")
    return Trainer(plan, cases, tmp_path / "run", config=config).fit().run_dir


@pytest.fixture
def nnunet_predictor(monkeypatch):
    """nnunetv2's predictor on the CPU. Its trainer lookup imports every trainer module, one of
    which needs torchvision (broken in this CPU venv), so the lookup returns the class directly;
    loading and prediction are unchanged."""
    pfr = pytest.importorskip("nnunetv2.inference.predict_from_raw_data")
    from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoMirroring import (  # noqa: E501
        nnUNetTrainerNoMirroring,
    )

    monkeypatch.setattr(
        pfr, "recursive_find_trainer_class_by_name", lambda name: nnUNetTrainerNoMirroring
    )

    def make(folder: Path):
        p = pfr.nnUNetPredictor(
            tile_step_size=0.5,
            use_gaussian=True,
            use_mirroring=True,
            perform_everything_on_device=False,
            device=torch.device("cpu"),
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
        p.initialize_from_trained_model_folder(str(folder), use_folds=(0,))
        return p

    return make


def test_export_loads_in_both_engines_identically(
    run_dir: Path, public_dataset: Path, tmp_path: Path, nnunet_predictor
) -> None:
    from nnunetv2.imageio.nibabel_reader_writer import NibabelIOWithReorient

    from totalseg.models.folder import load_model_folder
    from totalseg.pipeline import Segmenter

    folder = export_model(run_dir, tmp_path / "Dataset900_tiny" / "model")
    loaded = load_model_folder(folder)
    assert loaded.mirror_axes is None and loaded.n_out == 4
    assert loaded.dataset.class_names == {1: "spleen", 2: "kidney_left", 3: "liver"}
    # an LPS input: both engines reorient to RAS (the plan's NibabelIOWithReorient)
    src = nib.load(public_dataset / "s0003" / "ct.nii.gz")
    lps = src.as_reoriented(np.array([[0, -1], [1, -1], [2, 1]]))
    path = tmp_path / "lps.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(lps.dataobj), lps.affine), path)
    # parity mode: fp16 accumulation like nnU-Net (the default fp32 mode differs in a few voxels)
    ours = Segmenter(model_dir=folder, device="cpu", parity=True)(path)
    predictor = nnunet_predictor(folder)
    io = NibabelIOWithReorient()
    data, props = io.read_images([str(path)])
    seg = predictor.predict_single_npy_array(data, props, None, None, False)
    io.write_seg(seg, str(tmp_path / "theirs.nii.gz"), props)
    theirs = np.asarray(nib.load(tmp_path / "theirs.nii.gz").dataobj)
    assert ours.shape == theirs.shape == src.shape
    assert len(np.unique(theirs)) >= 2  # a non-trivial prediction
    assert np.array_equal(np.asarray(ours.array), theirs)


def test_export_errors(run_dir: Path, tmp_path: Path) -> None:
    export_model(run_dir, tmp_path / "m")
    with pytest.raises(ModelError, match="already exists"):
        export_model(run_dir, tmp_path / "m")
    export_model(run_dir, tmp_path / "m", checkpoint="best", overwrite=True)
    with pytest.raises(ConfigError, match="Expected checkpoint 'final'"):
        export_model(run_dir, tmp_path / "n", checkpoint="last")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="train first"):
        export_model(tmp_path / "empty", tmp_path / "n")


def test_fp16_export_halves_the_file_and_loads_as_float32(run_dir: Path, tmp_path: Path) -> None:
    from totalseg.models.checkpoint import load_checkpoint
    from totalseg.models.folder import load_model_folder

    full = export_model(run_dir, tmp_path / "m32")
    half = export_model(run_dir, tmp_path / "m16", store_fp16=True)
    size = {f: (f / "fold_0" / "checkpoint_final.pth").stat().st_size for f in (full, half)}
    assert size[half] < 0.6 * size[full]  # alias keys still share one tensor
    stored = load_checkpoint(half / "fold_0" / "checkpoint_final.pth")["network_weights"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    nets = [load_model_folder(f).networks[0] for f in (full, half)]
    assert {p.dtype for p in nets[1].parameters()} == {torch.float32}  # upcast at load
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        a, b = nets[0](x), nets[1](x)
    assert torch.allclose(a, b, atol=5e-2) and not torch.equal(a, b)  # fp16 rounding only
