"""Trainer: learning, bit-exact resume after a kill, run-folder files, error paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from totalseg.errors import ConfigError, InputError
from totalseg.training.cache import build_cache
from totalseg.training.config import TrainingConfig, TrainingEvent
from totalseg.training.dataset import read_dataset
from totalseg.training.planning import plan_training
from totalseg.training.state import load_training_state
from totalseg.training.trainer import Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def setup(public_dataset: Path, cache_dir: Path):
    ds = read_dataset(public_dataset)
    classes = dict(ds.label_names)
    cases = build_cache(ds, classes=classes, spacing_mm=1.5, cache_dir=cache_dir)
    plan = plan_training(
        cases,
        classes=classes,
        patch_size=(16, 16, 16),
        base_features=4,
        max_features=16,
        batch_size=2,
    )
    return plan, cases


def _config(**kw) -> TrainingConfig:
    base = {"epochs": 4, "iters_per_epoch": 3, "n_val_patches": 4, "seed": 3, "device": "cpu"}
    return TrainingConfig(**{**base, **kw})


def test_a_few_iterations_reduce_the_loss(setup, tmp_path: Path) -> None:
    plan, cases = setup
    trainer = Trainer(plan, cases, tmp_path / "run", config=_config(epochs=3, iters_per_epoch=10))
    before, _ = trainer.validate()
    result = trainer.fit()
    after = result.logs["val_loss"][-1]
    assert after < 0.8 * before
    assert result.logs["train_loss"][-1] < result.logs["train_loss"][0]
    assert len(result.logs["val_dice"][-1]) == 3


@pytest.mark.parametrize(
    ("optimizer", "lr", "precision"), [("adamw", 3e-3, "off"), ("sgd", 1e-2, "bf16")]
)
def test_adamw_and_bf16_autocast_learn_too(setup, tmp_path: Path, optimizer, lr, precision):
    plan, cases = setup
    config = _config(epochs=3, iters_per_epoch=10, optimizer=optimizer, initial_lr=lr,
                     mixed_precision=precision)  # fmt: skip
    trainer = Trainer(plan, cases, tmp_path / "run", config=config)
    expected = torch.optim.AdamW if optimizer == "adamw" else torch.optim.SGD
    assert type(trainer.optimizer) is expected
    before, _ = trainer.validate()
    result = trainer.fit()
    assert result.logs["val_loss"][-1] < 0.8 * before


def test_config_refuses_unknown_optimizer_and_precision() -> None:
    with pytest.raises(ConfigError) as info:
        TrainingConfig(optimizer="adam", mixed_precision="fp8")  # type: ignore[arg-type]
    assert "optimizer='adam' (use sgd or adamw)" in str(info.value)
    assert "mixed_precision='fp8' (use auto, off or bf16)" in str(info.value)


class _Kill(Exception):
    pass


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return trainer.network.state_dict()


def test_resume_after_a_kill_reproduces_the_straight_run(setup, tmp_path: Path) -> None:
    plan, cases = setup
    straight = Trainer(plan, cases, tmp_path / "a", config=_config())
    straight.fit()

    def kill_after(n_epochs: int):
        def callback(event: TrainingEvent) -> None:
            if event.kind == "epoch" and event.epoch + 1 == n_epochs:
                raise _Kill

        return callback

    # killed after 3 epochs with checkpoints every 2: resumes at epoch 2 and replays epoch 3;
    # the resumed run prepares batches in a background thread (must not change anything)
    run = tmp_path / "b"
    first = Trainer(plan, cases, run, config=_config(checkpoint_every=2), callback=kill_after(3))
    with pytest.raises(_Kill):
        first.fit()
    assert load_training_state(run / "checkpoint_latest.pth")["epoch"] == 2
    resumed = Trainer(plan, cases, run, config=_config(checkpoint_every=2, prefetch=2))
    result = resumed.fit(resume=True)
    assert result.epochs_completed == 4
    a, b = _state(straight), _state(resumed)
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert straight.logs["train_loss"] == resumed.logs["train_loss"]
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"]) for k in sa)


def test_run_folder_files(setup, tmp_path: Path) -> None:
    plan, cases = setup
    events: list[str] = []
    Trainer(
        plan,
        cases,
        tmp_path / "run",
        config=_config(epochs=2, iters_per_epoch=2),
        callback=lambda e: events.append(e.kind),
    ).fit()
    run = tmp_path / "run"
    for name in (
        "checkpoint_latest.pth",
        "checkpoint_final.pth",
        "checkpoint_best.pth",
        "progress.png",
        "training_log.txt",
    ):
        assert (run / name).is_file(), name
    assert events == ["start", "iteration", "iteration", "epoch"] * 1 + [
        "iteration",
        "iteration",
        "epoch",
        "end",
    ]
    log = (run / "training_log.txt").read_text().splitlines()
    assert len(log) == 2 and "epoch 2/2" in log[1] and "s/iteration" in log[1]
    state = load_training_state(run / "checkpoint_final.pth")
    assert state["trainer_name"] == "nnUNetTrainerNoMirroring"
    assert state["inference_allowed_mirroring_axes"] is None
    assert state["init_args"]["configuration"] == "3d_fullres" and state["epoch"] == 2


def test_trainer_errors(setup, tmp_path: Path) -> None:
    plan, cases = setup
    Trainer(plan, cases, tmp_path / "run", config=_config(epochs=1, iters_per_epoch=1)).fit()
    with pytest.raises(ConfigError, match="pass --resume"):
        Trainer(plan, cases, tmp_path / "run", config=_config(epochs=1)).fit()
    only_val = [dataclasses.replace(c, split="val") for c in cases]
    with pytest.raises(InputError, match="at least one case in the training split"):
        Trainer(plan, only_val, tmp_path / "x", config=_config())
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="Expected a CUDA device"):
            Trainer(plan, cases, tmp_path / "y", config=_config(device="cuda"))
    with pytest.raises(ConfigError, match="epochs=0"):
        TrainingConfig(epochs=0)
    with pytest.raises(ConfigError, match="device='tpu'"):
        TrainingConfig(device="tpu")
    with pytest.raises(ConfigError, match="Unknown training configuration keys"):
        TrainingConfig.from_dict({"epoch": 3})


def test_warm_start_takes_the_weights_and_refuses_another_network(setup, tmp_path: Path) -> None:
    plan, cases = setup
    first = Trainer(plan, cases, tmp_path / "a", config=_config(epochs=1)).fit()
    trained = load_training_state(first.checkpoint)["network_weights"]
    warm = Trainer(plan, cases, tmp_path / "b", config=_config(epochs=1, seed=9))
    assert any(not torch.equal(v, trained[k]) for k, v in _state(warm).items())
    warm.load_weights(first.checkpoint)
    assert all(torch.equal(v, trained[k]) for k, v in _state(warm).items())
    assert warm.epoch == 0 and warm.logs["train_loss"] == []  # only the weights carry over
    wider = plan_training(
        cases, classes=plan.classes, patch_size=(16, 16, 16), base_features=8, max_features=16
    )
    other = Trainer(wider, cases, tmp_path / "c", config=_config(epochs=1))
    with pytest.raises(ConfigError, match="differ in"):
        other.load_weights(first.checkpoint)
