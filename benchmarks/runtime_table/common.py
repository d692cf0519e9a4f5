"""Shared parts of the runtime benchmarks: random-init weights in the reference layout, phantoms
of a given matrix size, one engine run as a measured process tree, and label agreement."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
ENGINES = ("TotalSegmentator", "totalseg")
TASK_DATASETS = {"total": (291, 292, 293, 294, 295), "total-fast": (297,)}
TASK_SPACING = {"total": 1.5, "total-fast": 3.0}

# TotalSegmentator's published nnU-Net plans: PlainConvUNet, 6 stages 32..320, patch 128^3
FULL_ARCH = {
    "patch_size": (128, 128, 128),
    "features_per_stage": (32, 64, 128, 256, 320, 320),
    "strides": ((1, 1, 1),) + ((2, 2, 2),) * 5,
    "kernel_sizes": ((3, 3, 3),) * 6,
}
TINY_ARCH = {
    "patch_size": (32, 32, 32),
    "features_per_stage": (4, 8, 16),
    "strides": ((1, 1, 1), (2, 2, 2), (2, 2, 2)),
    "kernel_sizes": ((3, 3, 3),) * 3,
}


def log(text: str) -> None:
    print(text, flush=True)


def make_weights(home: Path, tasks: list[str], *, tiny: bool) -> Path:
    """Random-init model folders `<home>/weights/<Dataset...>/<trainer__plans__config>` for the
    datasets of `tasks` (the layout both tools read); reused when present."""
    sys.path.insert(0, str(SRC))
    from totalseg.anatomy import class_map, part_maps
    from totalseg.models.tasks import weights_entry
    from totalseg.models.writer import random_model_folder

    arch = TINY_ARCH if tiny else FULL_ARCH
    for task in tasks:
        for dataset_id in TASK_DATASETS[task]:
            entry = weights_entry(dataset_id)
            dest = home / "weights" / entry.folder / entry.model
            if (dest / "plans.json").exists():
                continue
            names = list((part_maps("v2").get(dataset_id) or class_map("v2")).values())
            log(f"writing random-init weights {dest.relative_to(home)}")
            random_model_folder(
                dest, n_classes=len(names), label_names=names, spacing_mm=TASK_SPACING[task],
                seed=dataset_id, trainer_name=entry.trainer,
                configuration=entry.model.split("__")[-1], overwrite=True, **arch,
            )  # fmt: skip
    reference_home = home / "ts_home"
    reference_home.mkdir(parents=True, exist_ok=True)
    (reference_home / "config.json").write_text(
        json.dumps({"totalseg_id": "totalseg_BENCH000", "send_usage_stats": False,
                    "prediction_counter": 0})
    )  # fmt: skip
    return home


@dataclass(frozen=True)
class Measured:
    engine: str
    wall_s: float
    peak_rss_mb: float
    returncode: int
    stderr_tail: str


def _tree_rss_bytes(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def run_engine(
    engine: str,
    task: str,
    source: Path,
    target: Path,
    home: Path,
    threads: int,
    totalseg_args: tuple[str, ...] = (),
) -> Measured:
    """One engine on one file in a fresh process: wall time of the whole process (imports
    included) and the peak of the summed RSS of its process tree (sampled every 50 ms)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOTALSEG_OFFLINE": "1"}
    if engine == "TotalSegmentator":
        env["TOTALSEG_HOME_DIR"] = str(home / "ts_home")
        env["TOTALSEG_WEIGHTS_PATH"] = str(home / "weights")
        cmd = [sys.executable, str(HERE / "reference_child.py"), str(source), str(target), task]
    else:
        env["TOTALSEG_HOME"] = str(home)
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
        cmd = [
            sys.executable, "-c", "import sys; from totalseg.cli import run; "
            "sys.argv[0] = 'totalseg'; run()", "segment", "-i", str(source),
            "-o", str(target), "--ml", "--task", task, "--device", "cpu", "-q", *totalseg_args,
        ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_bytes(proc.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall_s = time.perf_counter() - started
    stop.set()
    sampler.join()
    tail = err.decode(errors="replace")[-2000:]
    return Measured(engine, wall_s, peak / 1e6, proc.returncode, tail)


def agreement(reference: Path, other: Path, ct: Path) -> dict[str, float]:
    """Per-class Dice (min and mean over classes present in either) and the share of equal
    voxels, overall and inside the body (the intensity-only body mask, no margin)."""
    sys.path.insert(0, str(SRC))
    from totalseg.preprocess.body import body_mask

    a = np.asarray(nib.load(reference).dataobj)
    b = np.asarray(nib.load(other).dataobj)
    img = nib.load(ct)
    body = body_mask(np.asarray(img.dataobj), img.header.get_zooms()[:3], margin_mm=0.0)
    labels = sorted((set(np.unique(a)) | set(np.unique(b))) - {0})
    dice = []
    for v in labels:
        x, y = a == v, b == v
        dice.append(2.0 * float((x & y).sum()) / max(1, int(x.sum() + y.sum())))
    return {
        "n_classes": float(len(labels)),
        "min_dice": min(dice) if dice else 1.0,
        "mean_dice": statistics.fmean(dice) if dice else 1.0,
        "equal_voxels": float((a == b).mean()),
        "equal_in_body": float((a[body] == b[body]).mean()) if body.any() else 1.0,
    }


def compare_engines(
    task: str,
    source: Path,
    out_dir: Path,
    home: Path,
    *,
    repeats: int,
    threads: int,
    totalseg_args: tuple[str, ...] = (),
) -> dict[str, object]:
    """Both engines on one input, interleaved over `repeats` rounds: medians and ratios."""
    runs: dict[str, list[Measured]] = {e: [] for e in ENGINES}
    outputs = {e: out_dir / f"{source.name.split('.')[0]}_{task}_{e}.nii.gz" for e in ENGINES}
    for round_ in range(repeats):
        for engine in ENGINES:
            m = run_engine(engine, task, source, outputs[engine], home, threads, totalseg_args)
            log(f"  round {round_ + 1} {engine:17s} {task:10s} wall {m.wall_s:8.1f} s  "
                f"peak RSS {m.peak_rss_mb:7.0f} MB  rc {m.returncode}")  # fmt: skip
            if m.returncode != 0:
                raise RuntimeError(f"{engine} failed on {source}:\n{m.stderr_tail}")
            runs[engine].append(m)
    wall = {e: statistics.median(m.wall_s for m in runs[e]) for e in ENGINES}
    rss = {e: statistics.median(m.peak_rss_mb for m in runs[e]) for e in ENGINES}
    agree = agreement(outputs["TotalSegmentator"], outputs["totalseg"], source)
    return {
        "task": task, "input": source.name, "shape": list(nib.load(source).shape),
        "repeats": repeats, "threads": threads, "totalseg_args": list(totalseg_args),
        "wall_s": wall, "peak_rss_mb": rss,
        "speedup": wall["TotalSegmentator"] / wall["totalseg"],
        "memory_ratio": rss["totalseg"] / rss["TotalSegmentator"],
        **agree,
    }  # fmt: skip


def markdown_table(rows: list[dict[str, object]], *, label: str) -> str:
    head = (
        f"| {label} | task | TotalSegmentator s | totalseg s | speed-up | TS peak MB | "
        "totalseg peak MB | memory ratio | min Dice | mean Dice | equal in body |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        w, m = r["wall_s"], r["peak_rss_mb"]
        assert isinstance(w, dict) and isinstance(m, dict)
        lines.append(
            f"| {r['input']} {'x'.join(map(str, r['shape']))} | {r['task']} | "  # type: ignore[arg-type]
            f"{w['TotalSegmentator']:.1f} | {w['totalseg']:.1f} | {r['speedup']:.2f}x | "
            f"{m['TotalSegmentator']:.0f} | {m['totalseg']:.0f} | {r['memory_ratio']:.2f} | "
            f"{r['min_dice']:.4f} | {r['mean_dice']:.4f} | {100 * r['equal_in_body']:.3f} % |"  # type: ignore[operator]
        )
    return head + "\n".join(lines) + "\n"


def write_results(rows: list[dict[str, object]], out: Path, *, label: str, header: str) -> None:
    table = markdown_table(rows, label=label)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"{header}\n\n{table}")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    log(table)
    log(f"wrote {out} and {out.with_suffix('.json')}")
