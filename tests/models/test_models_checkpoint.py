from __future__ import annotations

import argparse
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from totalseg.errors import ModelError, UnsafeCheckpointError, WeightsNotFoundError
from totalseg.models.checkpoint import load_checkpoint


def _nnunet_like_checkpoint() -> dict:
    """The structure nnUNetTrainer.save_checkpoint writes, numpy scalars included."""
    weights = OrderedDict(w=torch.randn(2, 3), b=torch.zeros(2))
    weights["alias.w"] = weights["w"]
    return {
        "network_weights": weights,
        "optimizer_state": {"state": {0: {"momentum_buffer": torch.ones(2)}}, "param_groups": []},
        "grad_scaler_state": None,
        "logging": {
            "mean_fg_dice": [np.float64(0.5), np.float64(0.6)],
            "ema_fg_dice": [np.float64(0.55)],
            "dice_per_class_or_region": [[np.float64(0.4), np.float32(0.7)]],
            "train_losses": [np.float64(-0.3)],
            "lrs": [0.01],
            "epoch_start_timestamps": [1.7e9],
            "counts": [np.int64(3), np.bool_(True)],
        },
        "_best_ema": np.float64(0.61),
        "current_epoch": 1000,
        "init_args": {
            "plans": {"a": 1},
            "configuration": "3d_fullres",
            "fold": 0,
            "dataset_json": {},
            "unpack_dataset": True,
            "device": torch.device("cpu"),
        },
        "trainer_name": "nnUNetTrainerNoMirroring",
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "array": np.arange(4.0),
    }


@pytest.mark.parametrize("zip_format", [True, False])
def test_loads_real_nnunet_style_checkpoint(tmp_path: Path, zip_format: bool) -> None:
    ckpt = _nnunet_like_checkpoint()
    path = tmp_path / "checkpoint_final.pth"
    torch.save(ckpt, path, _use_new_zipfile_serialization=zip_format)
    got = load_checkpoint(path)
    assert torch.equal(got["network_weights"]["w"], ckpt["network_weights"]["w"])
    assert got["logging"]["mean_fg_dice"] == [0.5, 0.6]
    assert isinstance(got["_best_ema"], np.float64)
    assert got["init_args"]["device"] == torch.device("cpu")
    assert got["inference_allowed_mirroring_axes"] == (0, 1, 2)
    np.testing.assert_array_equal(got["array"], np.arange(4.0))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_refuses_os_system_in_torch_checkpoint(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"network_weights": {}, "x": _Evil(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"forbidden global (posix|os|nt)\.system"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_refuses_os_system_in_plain_pickle(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": _Evil(marker)}, protocol=protocol))
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pkl.*forbidden global (posix|os)"):
        load_checkpoint(path)
    assert not marker.exists()


def test_refuses_custom_class(tmp_path: Path) -> None:
    path = tmp_path / "custom.pth"
    torch.save({"network_weights": {}, "args": argparse.Namespace(a=1)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"forbidden global argparse\.Namespace"):
        load_checkpoint(path)


def test_refuses_eval_global(tmp_path: Path) -> None:
    # hand-written protocol-2 pickle: builtins.eval("...") would create the marker file
    marker = tmp_path / "executed"
    code = f"open({str(marker)!r}, 'w').close()"
    path = tmp_path / "eval.pkl"
    path.write_bytes(
        b"\x80\x02cbuiltins\neval\nq\x00X"
        + len(code).to_bytes(4, "little")
        + code.encode()
        + b"q\x01\x85q\x02Rq\x03."
    )
    with pytest.raises(UnsafeCheckpointError, match="forbidden global eval"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("zip_format", [True, False])
def test_truncated_checkpoint_is_a_model_error(tmp_path: Path, zip_format: bool) -> None:
    path = tmp_path / "ck.pth"
    torch.save(_nnunet_like_checkpoint(), path, _use_new_zipfile_serialization=zip_format)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        ModelError, match=r"is not a readable checkpoint .*re-download or re-import"
    ):
        load_checkpoint(path)


def test_garbage_and_non_dict(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelError, match="is not a readable checkpoint"):
        load_checkpoint(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ModelError, match="Expected a checkpoint dict, got list"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="totalseg weights import"):
        load_checkpoint(tmp_path / "nope.pth")
