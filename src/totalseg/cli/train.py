"""`totalseg train`, `totalseg plan`, `totalseg dataset convert`: training from the CLI.

Heavy imports (torch, the trainer) happen inside the commands so `totalseg --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from totalseg.errors import ConfigError

dataset_app = typer.Typer(help="Training datasets: convert between layouts.", no_args_is_help=True)

_CLASSES_HELP = (
    "Structures to train on: v1 (104), v2 (117), part:291 (one part of the five-part split) or "
    "names 'liver,spleen' (ids 1..n in that order). Default: the dataset's own labels."
)
_SPACING_HELP = "Target spacing in mm (one number, or x,y,z). Default: the dataset's median."


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"Expected {what} as numbers like 3 or 1.5,1.5,3, got {text!r}."
        ) from None
    if len(values) not in (1, 3):
        raise ConfigError(f"Expected one or three numbers for {what}, got {text!r}.")
    return values


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    values = _floats(text, what)
    if values is None:
        return None
    if any(v != int(v) or v < 1 for v in values):
        raise ConfigError(f"Expected positive integers for {what}, got {text!r}.")
    return tuple(int(v) for v in values) * (3 if len(values) == 1 else 1)


def _progress() -> Any:
    """A rich progress display on stderr (stdout is for results); none under -q."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from totalseg.cli.app import quiet

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
        disable=quiet(),
    )


def _prepare(
    dataset_dir: Path,
    *,
    classes: str | dict[int, str] | None,
    spacing_mm: str | None,
    cache_dir: Path | None,
    jobs: int,
    progress: Any,
) -> tuple[Any, dict[int, str], list[Any]]:
    """Read the dataset, resolve classes and spacing, build the cache (with a progress bar)."""
    from totalseg.training.cache import build_cache, median_spacing_mm
    from totalseg.training.classes import resolve_classes
    from totalseg.training.dataset import read_dataset

    dataset = read_dataset(dataset_dir)
    if isinstance(classes, dict):
        chosen = classes  # a stored plan's id space, as is
    else:
        chosen = resolve_classes(classes) if classes else dict(dataset.label_names)
    if not chosen:
        raise ConfigError(f"Expected label names in '{dataset_dir}', found none; pass --classes.")
    spacing = _floats(spacing_mm, "--spacing-mm") or median_spacing_mm(dataset)
    task = progress.add_task("preprocessing", total=len(dataset.cases), info="")

    def advance(done: int, total: int, case_id: str) -> None:
        progress.update(task, completed=done, info=case_id)

    cases = build_cache(
        dataset,
        classes=chosen,
        spacing_mm=spacing,
        cache_dir=cache_dir,
        jobs=jobs,
        progress=advance,
    )
    progress.update(task, completed=len(dataset.cases), info="done")
    return dataset, chosen, cases


def _plan_options(
    patch_size: str | None,
    batch_size: int | None,
    memory_budget_gb: float,
    base_features: int,
    max_features: int,
    device_kind: str,
) -> dict[str, Any]:
    return {
        "patch_size": _ints(patch_size, "--patch-size"),
        "batch_size": batch_size,
        "memory_budget_gb": memory_budget_gb,
        "base_features": base_features,
        "max_features": max_features,
        "device_kind": device_kind,
    }


def _plan(
    cases: list[Any], classes: dict[int, str], out: Path | None, options: dict[str, Any]
) -> Any:
    """Plan the cached cases; write plans.json + dataset.json to `out` when given."""
    from totalseg.training.planning import plan_training, write_training_plan

    plan = plan_training(cases, classes=classes, **options)
    if out is not None:
        write_training_plan(plan, out, n_training=len([c for c in cases if c.split != "test"]))
    return plan


def _plan_summary(plan: Any) -> dict[str, Any]:
    arch = plan.architecture
    return {
        "classes": len(plan.classes),
        "spacing_mm_zyx": list(plan.spacing),
        "patch_size_zyx": list(plan.patch_size),
        "batch_size": plan.batch_size,
        "n_stages": arch.n_stages,
        "features_per_stage": list(arch.features_per_stage),
        "strides": [list(s) for s in arch.strides],
        "estimated_memory_gb": round(plan.estimated_memory_gb, 2),
        "median_shape_zyx": list(plan.median_shape),
        "ct_intensity": plan.intensity.to_dict(),
    }


def _training_config(out: Path, resume: bool, overrides: dict[str, Any]) -> Any:
    """The stored config on --resume (CLI values override it), else defaults + CLI values."""
    from totalseg.training.config import TrainingConfig

    given = {k: v for k, v in overrides.items() if v is not None}
    stored = out / "training_config.json"
    if resume and stored.is_file():
        raw = json.loads(stored.read_text(encoding="utf-8"))
        return TrainingConfig.from_dict({**raw, **given})
    return TrainingConfig(**given)


def _event_renderer(progress: Any, names: list[str]) -> Any:
    from totalseg.training.config import TrainingEvent

    state: dict[str, Any] = {}

    def render(event: TrainingEvent) -> None:
        if event.kind == "start":
            total = event.n_epochs * event.iters_per_epoch
            state["task"] = progress.add_task(
                "training", total=total, info="", completed=event.epoch * event.iters_per_epoch
            )
        elif event.kind == "iteration":
            progress.update(
                state["task"], advance=1, info=f"epoch {event.epoch + 1} loss {event.loss:.3f}"
            )
        elif event.kind == "epoch":
            dice = [v for v in event.val_dice.values() if v == v]
            mean = sum(dice) / len(dice) if dice else float("nan")
            progress.console.print(
                f"epoch {event.epoch + 1}/{event.n_epochs}: train loss {event.loss:.4f}, "
                f"val loss {event.val_loss:.4f}, val Dice {mean:.4f}, lr {event.lr:.5f}, "
                f"{event.epoch_time_s:.1f} s"
            )

    return render


def train_command(
    dataset_dir: Path = typer.Argument(..., help="Dataset folder (public layout or nnU-Net raw)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Run folder (plans, checkpoints, log, model)."
    ),
    classes: str | None = typer.Option(None, "--classes", help=_CLASSES_HELP),
    spacing_mm: str | None = typer.Option(None, "--spacing-mm", help=_SPACING_HELP),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default 1000)."),
    iters_per_epoch: int | None = typer.Option(
        None, "--iters-per-epoch", help="Iterations per epoch (default 250)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Default: from the budget."),
    patch_size: str | None = typer.Option(
        None, "--patch-size", help="Patch in voxels, z,y,x or one number. Default: from the budget."
    ),
    memory_budget_gb: float = typer.Option(
        8.0, "--memory-budget-gb", help="RAM/GPU memory to plan for."
    ),
    base_features: int = typer.Option(32, "--base-features", help="Features of the first stage."),
    max_features: int = typer.Option(320, "--max-features", help="Feature cap per stage."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    init_from: Path | None = typer.Option(
        None,
        "--init-from",
        help="Warm start from this model folder's (fold_0) or checkpoint's weights; same plan.",
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default 0)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Processes for preprocessing."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Preprocessing cache folder."),
    val_patches: int | None = typer.Option(None, "--val-patches", help="Validation patches (16)."),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", help="Epochs (1)."),
    threads: int | None = typer.Option(None, "--threads", help="Torch CPU threads."),
    optimizer: str | None = typer.Option(
        None, "--optimizer", help="sgd (nnU-Net's, default) or adamw (faster early on)."
    ),
    lr: float | None = typer.Option(None, "--lr", help="Initial learning rate (sgd 1e-2)."),
    precision: str | None = typer.Option(
        None, "--precision", help="auto (fp16 on CUDA), off, or bf16 (also on CPU)."
    ),
) -> None:
    """Train a U-Net with nnU-Net's recipe; export an nnU-Net v2 model folder to OUT/model."""
    from totalseg.training.export import export_model
    from totalseg.training.planning import read_training_plan
    from totalseg.training.trainer import Trainer, resolve_device

    config = _training_config(
        out,
        resume,
        {
            "epochs": epochs,
            "iters_per_epoch": iters_per_epoch,
            "seed": seed,
            "device": device,
            "n_val_patches": val_patches,
            "checkpoint_every": checkpoint_every,
            "num_threads": threads,
            "optimizer": optimizer,
            "initial_lr": lr,
            "mixed_precision": precision,
        },
    )
    device_kind = resolve_device(config.device).type
    stored = read_training_plan(out) if resume and (out / "plans.json").is_file() else None
    with _progress() as progress:
        _, chosen, cases = _prepare(
            dataset_dir,
            classes=classes if stored is None else dict(stored.classes),
            spacing_mm=spacing_mm if stored is None else ",".join(map(str, stored.spacing[::-1])),
            cache_dir=cache_dir,
            jobs=jobs,
            progress=progress,
        )
        plan = stored or _plan(
            cases, chosen, out,
            _plan_options(
                patch_size, batch_size, memory_budget_gb, base_features, max_features,
                device_kind,
            ),
        )  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        (out / "training_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        names_list = list(plan.classes.values())
        trainer = Trainer(
            plan, cases, out, config=config, callback=_event_renderer(progress, names_list)
        )
        if init_from is not None and not resume:
            trainer.load_weights(init_from)
        result = trainer.fit(resume=resume)
    model = export_model(out, out / "model", overwrite=True)
    _print_result(result, names_list, model)


def _print_result(result: Any, names: list[str], model: Path) -> None:
    dice = result.logs["val_dice"][-1] if result.logs["val_dice"] else []
    pairs = sorted(((d, n) for n, d in zip(names, dice, strict=True) if d == d), reverse=True)
    mean = sum(d for d, _ in pairs) / len(pairs) if pairs else float("nan")
    typer.echo(f"Trained {result.epochs_completed} epochs; final validation Dice {mean:.4f}.")
    if pairs:
        worst = ", ".join(f"{n} {d:.3f}" for d, n in pairs[-5:])
        typer.echo(f"Lowest validation Dice: {worst}")
    typer.echo(f"Run folder: {result.run_dir}  (training_log.txt, progress.png, checkpoints)")
    typer.echo(f"Model folder: {model}  (use: totalseg segment --model-dir {model} ...)")


def plan_command(
    dataset_dir: Path = typer.Argument(..., help="Dataset folder (public layout or nnU-Net raw)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write plans.json + dataset.json here."
    ),
    classes: str | None = typer.Option(None, "--classes", help=_CLASSES_HELP),
    spacing_mm: str | None = typer.Option(None, "--spacing-mm", help=_SPACING_HELP),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Default: from the budget."),
    patch_size: str | None = typer.Option(None, "--patch-size", help="z,y,x voxels or one number."),
    memory_budget_gb: float = typer.Option(8.0, "--memory-budget-gb", help="Memory to plan for."),
    base_features: int = typer.Option(32, "--base-features", help="Features of the first stage."),
    max_features: int = typer.Option(320, "--max-features", help="Feature cap per stage."),
    device_kind: str = typer.Option("cpu", "--for", help="Plan for 'cpu' (fp32) or 'cuda' (AMP)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Processes for preprocessing."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Preprocessing cache folder."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Preprocess a dataset and plan a 3d_fullres configuration (nnU-Net v2 plans.json)."""

    if device_kind not in ("cpu", "cuda"):
        raise ConfigError(f"Expected --for cpu or cuda, got {device_kind!r}.")
    with _progress() as progress:
        _, chosen, cases = _prepare(
            dataset_dir,
            classes=classes,
            spacing_mm=spacing_mm,
            cache_dir=cache_dir,
            jobs=jobs,
            progress=progress,
        )
    options = _plan_options(
        patch_size, batch_size, memory_budget_gb, base_features, max_features, device_kind
    )
    plan = _plan(cases, chosen, out, options)
    summary = _plan_summary(plan)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        typer.echo(f"{key}: {value}")
    if out is not None:
        typer.echo(f"Wrote {out / 'plans.json'} and {out / 'dataset.json'}.")


@dataset_app.command("convert")
def convert_dataset_command(
    source: Path = typer.Argument(..., help="Dataset folder (public layout or nnU-Net raw)."),
    destination: Path = typer.Argument(..., help="New folder for the converted dataset."),
    to: str = typer.Option(..., "--to", help="Target layout: nnunet or public."),
    classes: str | None = typer.Option(None, "--classes", help=_CLASSES_HELP),
    name: str = typer.Option("totalseg", "--name", help="Dataset name in dataset.json."),
) -> None:
    """Convert a dataset between the public layout and nnU-Net's raw layout."""
    from totalseg.training.classes import resolve_classes
    from totalseg.training.convert import ConvertTarget, convert_dataset

    if to not in ("nnunet", "public"):
        raise ConfigError(f"Expected --to nnunet or public, got {to!r}.")
    target: ConvertTarget = "nnunet" if to == "nnunet" else "public"
    chosen = resolve_classes(classes) if classes else None
    with _progress() as progress:
        task = progress.add_task("converting", total=None, info="")

        def advance(done: int, total: int, case_id: str) -> None:
            progress.update(task, completed=done, total=total, info=case_id)

        result = convert_dataset(
            source,
            destination,
            to=target,
            classes=chosen,
            name=name,
            progress=advance,
        )
    typer.echo(f"Converted {len(result.cases)} cases to '{destination}' ({to} layout).")


def register(app: typer.Typer) -> None:
    """Add `train`, `plan`, `dataset convert` and `demo` to the root app."""
    app.command("train")(train_command)
    app.command("demo")(demo_command)
    app.command("plan")(plan_command)
    app.add_typer(dataset_app, name="dataset")


def _dice_per_structure(truth: Any, pred: Any) -> dict[str, float]:
    """Dice per structure name present in the ground truth (predicted ids matched by name)."""
    import numpy as np

    from totalseg.metrics import dice_score

    by_name = {n: i for i, n in pred.labels.items()}
    t_arr, p_arr = np.asarray(truth.array), np.asarray(pred.array)
    out = {}
    for value, name in truth.labels.items():
        if name in by_name and (t_arr == value).any():
            out[name] = dice_score(t_arr == value, p_arr == by_name[name])
    return out


def demo_command(
    out: Path = typer.Option(Path("totalseg_demo"), "--out", "-o", help="Output folder."),
    seed: int = typer.Option(1_000_001, "--seed", help="Phantom seed (training used 0..N-1)."),
    fov: str = typer.Option("whole-body", "--fov", help="whole-body, thorax-abdomen, abdomen."),
    spacing_mm: float = typer.Option(3.0, "--spacing-mm", help="Phantom voxel spacing."),
    model_dir: Path | None = typer.Option(None, "--model-dir", help="Default: the shipped demo."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda."),
) -> None:
    """Segment a synthetic phantom with the shipped demo model; print Dice per structure."""
    from totalseg.io.nifti import (
        PHANTOM_DESCRIPTION,
        write_image,
        write_label_map,
        write_mask_folder,
    )
    from totalseg.phantom import generate_subject, sample_subject_params
    from totalseg.pipeline import Segmenter
    from totalseg.run import DEMO_WARNING

    if model_dir is None:
        segmenter = Segmenter(task="demo", device=device)
    else:
        segmenter = Segmenter(model_dir=model_dir, device=device)
    params = sample_subject_params(seed, fov=fov, spacing_mm=spacing_mm, orientation="random")
    typer.echo(f"Generating phantom {seed} ({fov}, {spacing_mm} mm, {params.orientation})...")
    phantom = generate_subject(params)
    truth = phantom.label_map("v1")
    write_image(phantom.image, out / "ct.nii.gz", description=PHANTOM_DESCRIPTION)
    write_label_map(truth, out / "ground_truth.nii.gz")
    typer.echo("Segmenting...")
    pred = segmenter(phantom.image)
    write_mask_folder(pred, out / "segmentations")
    dice = _dice_per_structure(truth, pred)
    (out / "dice.json").write_text(json.dumps(dice, indent=2) + "\n")
    ranked = sorted(dice.items(), key=lambda kv: kv[1] if kv[1] == kv[1] else -1.0)
    for name, value in sorted(dice.items()):
        typer.echo(f"{name:32s} {value:.3f}")
    mean = sum(v for v in dice.values() if v == v) / max(1, len(dice))
    typer.echo(f"Mean Dice over {len(dice)} structures present: {mean:.3f}")
    typer.echo("Worst: " + ", ".join(f"{n} {v:.3f}" for n, v in ranked[:10]))
    typer.echo(f"Wrote {out}/ct.nii.gz, ground_truth.nii.gz, segmentations/, dice.json")
    if model_dir is None:
        typer.echo(f"Note: {DEMO_WARNING}")
