"""Train the shipped demo model: one 3 mm model over the paper's 104 (v1) structures.

Steps (each one resumable; rerun the same command after an interruption):

1. Phantoms: seeds 0..N-1 from `totalseg.phantom` with the field of view, orientation, body and
   contrast phase drawn per seed and the spacing drawn from `SPACINGS` (mostly 3 mm), written as
   an nnU-Net raw dataset ``WORK/raw`` (imagesTr/labelsTr with v1 ids, dataset.json,
   splits_final.json: the last 10% of seeds validate). One label file per case is much faster to
   write than 104 mask files; `totalseg dataset convert` turns it into the public layout.
2. Training with totalseg's trainer (`WORK/run`): v1 classes, 3 mm, the given patch and network
   width, nnU-Net's recipe; resumes from ``WORK/run/checkpoint_latest.pth`` when present.
3. Export of the final checkpoint as an nnU-Net v2 model folder into ``--out`` (default: the
   package's bundled folder of dataset 9000, task `demo`), its size, and its checkpoint's
   sha256 and size written into ``src/totalseg/models/data/weights.json`` (entry 9000) when
   exporting there.

``--time-only K`` only measures: it prepares the data, runs K training iterations and prints the
seconds per iteration (no run folder, no export).

Usage:
    python benchmarks/training/train_demo.py --n 40 --jobs 2 --work /tmp/totalseg_demo \\
        --epochs 60 --iters-per-epoch 50 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEMO_ID = "9000"
WEIGHTS_JSON = REPO / "src/totalseg/models/data/weights.json"


def bundled_folder() -> Path:
    entry = json.loads(WEIGHTS_JSON.read_text())["datasets"][DEMO_ID]
    return REPO / "src/totalseg/models/data" / entry["folder"] / entry["model"]


def register(folder: Path) -> None:
    """Pin the shipped checkpoint's sha256 and size in weights.json (entry 9000)."""
    from totalseg.models.download import sha256_file

    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    doc = json.loads(WEIGHTS_JSON.read_text())
    doc["datasets"][DEMO_ID]["sha256"] = sha256_file(checkpoint)
    doc["datasets"][DEMO_ID]["size_bytes"] = checkpoint.stat().st_size
    WEIGHTS_JSON.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"registered {checkpoint} in {WEIGHTS_JSON}")


SPACINGS = [(3.0, 3.0, 3.0)] * 4 + [(2.5, 2.5, 2.5), (2.0, 2.0, 3.0), (3.0, 3.0, 5.0)]


def write_phantom(args: tuple[int, str]) -> str:
    """One phantom into the raw dataset (skipped when already written)."""
    seed, root = args
    from totalseg.io.nifti import write_image, write_label_map
    from totalseg.phantom import generate_subject, sample_subject_params

    case = f"s{seed:04d}"
    label_path = Path(root) / "labelsTr" / f"{case}.nii.gz"
    if label_path.is_file():
        return case
    rng = np.random.default_rng([seed, 7])
    spacing = SPACINGS[int(rng.integers(len(SPACINGS)))]
    params = sample_subject_params(seed, fov="random", orientation="random", spacing_mm=spacing)
    phantom = generate_subject(params)
    write_image(phantom.image, Path(root) / "imagesTr" / f"{case}_0000.nii.gz")
    write_label_map(phantom.label_map("v1"), label_path)  # written last: marks the case done
    return case


def make_dataset(root: Path, n: int, jobs: int) -> None:
    from totalseg.anatomy import class_map
    from totalseg.training.convert import nnunet_dataset_json

    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tasks = [(seed, str(root)) for seed in range(n)]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            cases = list(pool.map(write_phantom, tasks))
    else:
        cases = [write_phantom(t) for t in tasks]
    n_val = max(1, round(0.1 * n))
    doc = nnunet_dataset_json(class_map("v1"), n_training=n, name="totalseg_demo")
    (root / "dataset.json").write_text(json.dumps(doc, indent=2))
    split = [{"train": cases[:-n_val], "val": cases[-n_val:]}]
    (root / "splits_final.json").write_text(json.dumps(split, indent=2))
    print(f"phantoms: {n} in {time.perf_counter() - start:.0f} s ({n_val} for validation)")


def prepare(args: argparse.Namespace):
    from totalseg.training import build_cache, plan_training, read_dataset, resolve_classes

    raw = args.work / "raw"
    make_dataset(raw, args.n, args.jobs)
    classes = resolve_classes("v1")
    start = time.perf_counter()
    cases = build_cache(
        read_dataset(raw),
        classes=classes,
        spacing_mm=3.0,
        cache_dir=args.work / "cache",
        jobs=args.jobs,
    )
    print(f"cache: {len(cases)} cases in {time.perf_counter() - start:.0f} s")
    patch = tuple(int(p) for p in args.patch_size.split(","))
    plan = plan_training(
        cases,
        classes=classes,
        dataset_name="Dataset999_TotalsegDemo",
        patch_size=patch * (3 if len(patch) == 1 else 1),
        batch_size=args.batch_size,
        base_features=args.base_features,
        max_features=args.max_features,
        max_stages=args.max_stages,
        batch_dice=args.batch_dice,
    )
    arch = plan.architecture
    print(
        f"plan: patch {plan.patch_size} batch {plan.batch_size} features "
        f"{arch.features_per_stage} estimated {plan.estimated_memory_gb:.2f} GB"
    )
    return plan, cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="phantoms (train + validation)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/totalseg_demo"))
    parser.add_argument("--out", type=Path, default=None, help="default: the bundled folder")
    parser.add_argument("--jobs", type=int, default=2, help="processes for phantoms and cache")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--iters-per-epoch", type=int, default=50)
    parser.add_argument("--patch-size", default="64", help="z,y,x voxels at 3 mm, or one number")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--base-features", type=int, default=16)
    parser.add_argument("--max-features", type=int, default=128)
    parser.add_argument("--max-stages", type=int, default=5)
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    parser.add_argument("--lr", type=float, default=1e-2, help="initial learning rate")
    parser.add_argument("--val-patches", type=int, default=16)
    parser.add_argument("--oversample", type=float, default=0.33, help="foreground share")
    parser.add_argument("--batch-dice", action="store_true", help="Dice over the whole batch")
    parser.add_argument("--precision", choices=("auto", "off", "bf16"), default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-only", type=int, default=0, help="measure K iterations only")
    parser.add_argument(
        "--init-from",
        default=None,
        help="warm start: a checkpoint or model folder, or 'bundled' (the shipped model)",
    )
    parser.add_argument("--export", choices=("final", "best"), default="final")
    parser.add_argument("--fp16", action="store_true", help="store the exported weights in fp16")
    args = parser.parse_args()

    import torch

    from totalseg.training import Trainer, TrainingConfig, export_model
    from totalseg.training.planning import count_parameters

    torch.set_num_threads(args.threads)
    plan, cases = prepare(args)
    n_params = count_parameters(plan.architecture, plan.n_classes)
    print(f"network: {n_params / 1e6:.2f} M parameters ({n_params * 4 / 1e6:.1f} MB fp32)")
    if args.time_only:
        measure(plan, cases, args)
        return
    config = TrainingConfig(
        epochs=args.epochs,
        iters_per_epoch=args.iters_per_epoch,
        seed=args.seed,
        device=args.device,
        num_threads=args.threads,
        optimizer=args.optimizer,
        initial_lr=args.lr,
        n_val_patches=args.val_patches,
        mixed_precision=args.precision,
        oversample_foreground=args.oversample,
    )
    run = args.work / "run"
    start = time.perf_counter()
    trainer = Trainer(plan, cases, run, config=config, callback=print_epochs)
    resume = (run / "checkpoint_latest.pth").is_file()
    if args.init_from and not resume:
        init = bundled_folder() if args.init_from == "bundled" else Path(args.init_from)
        trainer.load_weights(init)
        print(f"warm start from {init}")
    result = trainer.fit(resume=resume)
    print(f"training: {result.epochs_completed} epochs, {time.perf_counter() - start:.0f} s")
    out = args.out or bundled_folder()
    folder = export_model(run, out, checkpoint=args.export, overwrite=True, store_fp16=args.fp16)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"model folder: {folder} ({size / 1e6:.1f} MB)")
    if folder.resolve() == bundled_folder().resolve():
        register(folder)


def print_epochs(event) -> None:
    if event.kind == "epoch":
        dice = [v for v in event.val_dice.values() if v == v]
        mean = sum(dice) / len(dice) if dice else float("nan")
        print(
            f"epoch {event.epoch + 1}/{event.n_epochs}: loss {event.loss:.4f} "
            f"val Dice {mean:.4f} ({event.epoch_time_s:.0f} s)",
            flush=True,
        )


def measure(plan, cases, args: argparse.Namespace) -> None:
    import tempfile

    from totalseg.training import Trainer, TrainingConfig

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainingConfig(
            epochs=1,
            iters_per_epoch=args.time_only,
            n_val_patches=0,
            optimizer=args.optimizer,
            mixed_precision=args.precision,
            device=args.device,
            num_threads=args.threads,
        )
        trainer = Trainer(plan, cases, tmp, config=config)
        times: list[float] = []
        last = [time.perf_counter()]

        def tick(event) -> None:
            if event.kind == "iteration":
                now = time.perf_counter()
                times.append(now - last[0])
                last[0] = now

        trainer.callback = tick
        last[0] = time.perf_counter()
        trainer.fit()
    steady = times[1:] or times
    print(
        f"time per iteration: {np.median(steady):.2f} s median, {np.mean(steady):.2f} s mean "
        f"(first {times[0]:.2f} s, {len(times)} iterations, {args.threads} threads)"
    )


if __name__ == "__main__":
    main()
