"""nnunetv2's trainer vs totalseg's trainer: same phantom dataset, same plan, same iterations.

1. N phantoms (3 mm, drawn FOV/orientation, see train_demo.py) as an nnU-Net raw dataset with
   the chosen classes (default: v1 part 251, the 17 organs); the last `--n-val` cases validate.
2. totalseg: cache + plan (the given patch/width) -> plans.json; train E epochs x I iterations.
3. nnunetv2 2.8.1 on the same raw data with the **same plans.json** (written as
   nnUNet_preprocessed/Dataset998_TrainBench/nnUNetPlans.json): its own fingerprint and
   preprocessing (`extract_fingerprint_dataset`, `preprocess_dataset`), then
   `nnUNetTrainerNoMirroring` (our recipe has no mirroring either) with E epochs x I iterations,
   2 validation iterations per epoch, single-threaded data augmentation (nnUNet_n_proc_DA=0,
   like totalseg's synchronous loader), CPU.
4. Both final checkpoints are evaluated the same way: totalseg's engine (`Segmenter(model_dir=)`,
   sliding window, step 0.5) on the whole validation volumes -> Dice per class against the
   phantom ground truth, mean over the classes present.

Time per iteration = training-loop time of an epoch (data loading + augmentation + step,
validation excluded) / iterations, median over epochs.

Usage:
    python benchmarks/training/bench_trainers.py --work /tmp/totalseg_bench --n 10 --n-val 2 \\
        --epochs 4 --iters-per-epoch 25 --patch-size 64 --base-features 8 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

DATASET_ID, DATASET = 998, "Dataset998_TrainBench"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/totalseg_bench"))
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--n-val", type=int, default=2)
    p.add_argument("--classes", default="part:251")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--iters-per-epoch", type=int, default=25)
    p.add_argument("--patch-size", type=int, default=64)
    p.add_argument("--base-features", type=int, default=8)
    p.add_argument("--max-features", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--optimizer",
        choices=("sgd", "adamw"),
        default="sgd",
        help="sgd: nnU-Net's recipe; adamw: AdamW + the same poly schedule, both sides",
    )
    p.add_argument("--lr", type=float, default=1e-2, help="initial learning rate, both sides")
    p.add_argument("--skip", default="", help="comma list: ours,nnunet (reuse earlier results)")
    return p.parse_args()


def make_raw(args: argparse.Namespace) -> Path:
    """Phantoms as an nnU-Net raw dataset in the chosen id space (reused when present)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from train_demo import make_dataset

    from totalseg.training import convert_dataset, resolve_classes

    full = args.work / "phantoms_v1"
    make_dataset(full, args.n, args.jobs)
    split = [
        {
            "train": [f"s{i:04d}" for i in range(args.n - args.n_val)],
            "val": [f"s{i:04d}" for i in range(args.n - args.n_val, args.n)],
        }
    ]
    (full / "splits_final.json").write_text(json.dumps(split))
    raw = args.work / "nnUNet_raw" / DATASET
    if not (raw / "dataset.json").is_file():
        shutil.rmtree(raw, ignore_errors=True)
        convert_dataset(full, raw, to="nnunet", classes=resolve_classes(args.classes), name=DATASET)
    return raw


def train_ours(args: argparse.Namespace, raw: Path) -> tuple[Path, dict]:
    from totalseg.training import (
        Trainer,
        TrainingConfig,
        build_cache,
        export_model,
        plan_training,
        read_dataset,
        write_training_plan,
    )

    ds = read_dataset(raw)
    classes = dict(ds.label_names)
    cases = build_cache(
        ds, classes=classes, spacing_mm=3.0, cache_dir=args.work / "cache", jobs=args.jobs
    )
    plan = plan_training(
        cases,
        classes=classes,
        dataset_name=DATASET,
        patch_size=(args.patch_size,) * 3,
        batch_size=2,
        base_features=args.base_features,
        max_features=args.max_features,
    )
    write_training_plan(plan, args.work / "plan", n_training=len(cases))
    run = args.work / "ours"
    if "ours" not in args.skip:
        shutil.rmtree(run, ignore_errors=True)
        config = TrainingConfig(
            epochs=args.epochs,
            iters_per_epoch=args.iters_per_epoch,
            n_val_patches=4,
            device="cpu",
            num_threads=args.threads,
            optimizer=args.optimizer,
            initial_lr=args.lr,
        )
        Trainer(plan, cases, run, config=config).fit()
        export_model(run, run / "model", overwrite=True)
    state = json.loads(json.dumps(_logs(run)))
    return run / "model", state


def _logs(run: Path) -> dict:
    from totalseg.training.state import load_training_state

    logs = load_training_state(run / "checkpoint_final.pth")["logs"]
    return {"epoch_time_s": logs["epoch_time_s"], "pseudo_dice": logs["val_dice_mean"]}


def train_nnunet(args: argparse.Namespace) -> tuple[Path, dict]:
    import torch
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        preprocess_dataset,
    )
    from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoMirroring import (  # noqa: E501
        nnUNetTrainerNoMirroring,
    )

    pre = args.work / "nnUNet_preprocessed" / DATASET
    results = args.work / "nnUNet_results" / DATASET
    if "nnunet" in args.skip:
        return results / "model", json.loads((results / "timing.json").read_text())
    shutil.rmtree(pre, ignore_errors=True)
    shutil.rmtree(results, ignore_errors=True)
    extract_fingerprint_dataset(DATASET_ID, num_processes=args.jobs, check_dataset_integrity=True)
    shutil.copyfile(args.work / "plan" / "plans.json", pre / "nnUNetPlans.json")
    raw = args.work / "nnUNet_raw" / DATASET
    shutil.copyfile(raw / "splits_final.json", pre / "splits_final.json")
    shutil.copyfile(raw / "dataset.json", pre / "dataset.json")
    preprocess_dataset(
        DATASET_ID, "nnUNetPlans", ("3d_fullres",), [args.jobs], show_progress_bar=False
    )
    torch.set_num_threads(args.threads)
    times: list[float] = []
    CPU = torch.device("cpu")

    class Timed(nnUNetTrainerNoMirroring):
        # nnU-Net records its __init__ arguments by signature: keep the explicit one
        def __init__(
            self,
            plans: dict,
            configuration: str,
            fold: int,
            dataset_json: dict,
            device: torch.device = CPU,
        ) -> None:
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.initial_lr = args.lr
            self.num_iterations_per_epoch = args.iters_per_epoch
            self.num_val_iterations_per_epoch = 2
            self.num_epochs = args.epochs

        def configure_optimizers(self):
            if args.optimizer == "sgd":
                return super().configure_optimizers()
            from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

            optimizer = torch.optim.AdamW(
                self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay
            )
            return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

        def on_train_epoch_start(self) -> None:
            super().on_train_epoch_start()
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, outputs) -> None:
            times.append(time.perf_counter() - self._t0)
            super().on_train_epoch_end(outputs)

    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False  # what nnunetv2's run_training adds before building it
    dataset_json = json.loads((raw / "dataset.json").read_text())
    trainer = Timed(plans, "3d_fullres", 0, dataset_json, device=torch.device("cpu"))
    trainer.run_training()
    out = Path(trainer.output_folder_base)
    model = results / "model"
    model.mkdir(parents=True, exist_ok=True)
    for name in ("plans.json", "dataset.json"):
        shutil.copyfile(out / name, model / name)
    (model / "fold_0").mkdir(exist_ok=True)
    shutil.copyfile(
        out / "fold_0" / "checkpoint_final.pth", model / "fold_0" / "checkpoint_final.pth"
    )
    ema = [float(v) for v in trainer.logger.local_logger.my_fantastic_logging["mean_fg_dice"]]
    timing = {"epoch_time_s": times, "pseudo_dice": ema}
    (results / "timing.json").write_text(json.dumps(timing))
    return model, timing


def evaluate(model: Path, raw: Path, n_val: int) -> tuple[float, dict[str, float]]:
    """Mean Dice over present classes on the validation cases (totalseg's engine for both)."""
    from totalseg.io.nifti import read_label_map
    from totalseg.pipeline import Segmenter

    segmenter = Segmenter(model_dir=model, device="cpu")
    split = json.loads((raw / "splits_final.json").read_text())[0]["val"]
    per_class: dict[str, list[float]] = {}
    for case in split[-n_val:]:
        pred = np.asarray(segmenter(raw / "imagesTr" / f"{case}_0000.nii.gz").array)
        truth = np.asarray(read_label_map(raw / "labelsTr" / f"{case}.nii.gz").array)
        for value, name in segmenter.labels.items():
            t, p = truth == value, pred == value
            if t.any():
                per_class.setdefault(name, []).append(2 * (t & p).sum() / (t.sum() + p.sum()))
    means = {k: float(np.mean(v)) for k, v in per_class.items()}
    return float(np.mean(list(means.values()))), means


def main() -> None:
    args = parse()
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[key] = str(args.work / key)
    os.environ.update({"nnUNet_n_proc_DA": "0", "nnUNet_compile": "f"})
    raw = make_raw(args)
    ours_model, ours = train_ours(args, raw)
    theirs_model, theirs = train_nnunet(args)
    rows = []
    for name, model, timing in (("totalseg", ours_model, ours), ("nnunetv2", theirs_model, theirs)):
        mean, per_class = evaluate(model, raw, args.n_val)
        per_iter = float(np.median(timing["epoch_time_s"])) / args.iters_per_epoch
        rows.append((name, per_iter, timing["pseudo_dice"][-1], mean, per_class))
    print(
        f"\n{args.epochs} epochs x {args.iters_per_epoch} iterations, patch {args.patch_size}^3, "
        f"base features {args.base_features}, {args.threads} threads, classes {args.classes}, "
        f"{args.optimizer} lr {args.lr:g}"
    )
    print("| trainer | s/iteration | pseudo Dice (last epoch) | val Dice (whole volumes) |")
    print("|---|---|---|---|")
    for name, per_iter, pseudo, mean, _ in rows:
        print(f"| {name} | {per_iter:.2f} | {pseudo:.3f} | {mean:.3f} |")
    print(f"ratio s/iteration totalseg/nnunetv2: {rows[0][1] / rows[1][1]:.2f}")
    for name, *_, per_class in rows:
        print(name, json.dumps({k: round(v, 3) for k, v in sorted(per_class.items())}))


if __name__ == "__main__":
    main()
