"""GPU check: CPU-vs-GPU agreement, wall time and peak GPU memory of `total` and `total-fast`.

Run by `check.sh` (which prepares the environment); results go to `--out`:
`gpu_check.json` (everything) and `gpu_check.md` (two tables).

1. A weights home with random-init (He, nnU-Net's init) models of the TotalSegmentator sizes
   (6 stages 32..320, patch 128^3; `--small`: 3 stages 8..32, patch 32^3) for `total` (5 parts,
   1.5 mm) and `total-fast` (3 mm), in the official folder layout.
2. Agreement: one body phantom of 160x160x128 voxels at 1.5 mm (`--small`: 64x64x48), each task
   on the CPU (torch fp32, the reference) and on `--device` with its default precision (fp16
   autocast on CUDA) and with fp32: per-class Dice (classes present in either), voxel agreement.
3. Timing: one phantom of 512x512x458 voxels (0.8 x 0.8 x 1.0 mm, the paper's thorax-abdomen
   size; `--small`: 96x96x80), each task on `--device`: model loading, then one segmentation
   (wall time), and the peak GPU memory (`torch.cuda.max_memory_allocated`) of that segmentation.

    python benchmarks/gpu/gpu_check.py --device cuda --out OUT
    python benchmarks/gpu/gpu_check.py --device cpu --small --out /tmp/gpu_check   # dry run
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

ARCH = {
    "full": {"features": (32, 64, 128, 256, 320, 320), "patch": (128, 128, 128)},
    "small": {"features": (8, 16, 32), "patch": (32, 32, 32)},
}
TASKS = ("total-fast", "total")


def weights_home(root: Path, arch: dict) -> Path:
    from totalseg.anatomy import class_map, part_maps
    from totalseg.models.tasks import get_task, weights_entry
    from totalseg.models.writer import random_model_folder

    parts = part_maps("v2")
    n = len(arch["features"])
    for task in TASKS:
        spec = get_task(task)
        for dataset_id in spec.datasets:
            entry = weights_entry(dataset_id)
            names = list(parts.get(dataset_id, class_map("v2")).values())
            random_model_folder(
                root / "weights" / entry.folder / entry.model, n_classes=len(names),
                patch_size=arch["patch"], spacing_mm=spec.spacing_mm, seed=dataset_id,
                label_names=names, trainer_name=entry.trainer,
                features_per_stage=arch["features"], strides=((1, 1, 1),) + ((2, 2, 2),) * (n - 1),
                kernel_sizes=((3, 3, 3),) * n, overwrite=True,
            )  # fmt: skip
    return root


def body_phantom(shape: tuple[int, int, int], spacing_mm: tuple[float, ...], seed: int = 0):
    """An int16 CT-like Image: air, an elliptic soft-tissue body, a spine-like dense rod, lungs,
    noise; built axis by axis (no full meshgrid), so 512x512x458 takes a few seconds."""
    from totalseg.image import Image

    rng = np.random.default_rng(seed)
    x, y, z = (np.linspace(-1, 1, s, dtype=np.float32) for s in shape)
    r2 = (x[:, None] / 0.85) ** 2 + (y[None, :] / 0.65) ** 2
    body = (r2 < 1)[:, :, None] & (np.abs(z) < 0.98)[None, None, :]
    ct = np.where(body, np.int16(40), np.int16(-1000))
    spine = ((x[:, None] ** 2 + (y[None, :] + 0.4) ** 2) < 0.01)[:, :, None]
    ct[np.broadcast_to(spine, ct.shape) & body] = 700
    lungs = (((np.abs(x[:, None]) - 0.4) ** 2 / 0.07 + y[None, :] ** 2 / 0.2) < 1)[:, :, None]
    ct[np.broadcast_to(lungs, ct.shape) & (z > 0.1)[None, None, :] & body] = -850
    ct += rng.normal(0, 15, size=shape).astype(np.int16)
    affine = np.diag([*spacing_mm, 1.0])
    return Image(ct, affine)


def per_class_dice(a: np.ndarray, b: np.ndarray) -> dict[int, float]:
    out = {}
    for label in np.union1d(np.unique(a), np.unique(b)):
        if label == 0:
            continue
        x, y = a == label, b == label
        out[int(label)] = 2 * float((x & y).sum()) / float(x.sum() + y.sum())
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def agreement(home: Path, device: str, small: bool) -> list[dict]:
    from totalseg.pipeline import Segmenter

    image = body_phantom((64, 64, 48) if small else (160, 160, 128), (1.5, 1.5, 1.5), seed=1)
    rows = []
    for task in TASKS:
        cpu = Segmenter(task, device="cpu", backend="torch", precision="fp32", home=home)
        reference = np.asarray(cpu(image).array)
        for precision in (None, "fp32"):
            seg = Segmenter(task, device=device, backend="torch", precision=precision, home=home)
            labels = np.asarray(seg(image).array)
            dice = per_class_dice(labels, reference)
            used = seg.parts[0].predictor.kernels.precision
            rows.append({
                "task": task, "device": device, "precision": used,
                "n_classes": len(dice), "min_dice": min(dice.values(), default=1.0),
                "mean_dice": float(np.mean(list(dice.values()))) if dice else 1.0,
                "voxel_agreement": float((labels == reference).mean()),
            })  # fmt: skip
            print("agreement", rows[-1], flush=True)
    return rows


def timing(home: Path, device: str, small: bool) -> list[dict]:
    from totalseg.pipeline import Segmenter

    shape = (96, 96, 80) if small else (512, 512, 458)
    start = time.perf_counter()
    image = body_phantom(shape, (0.8, 0.8, 1.0), seed=2)
    print(f"phantom {shape} in {time.perf_counter() - start:.1f} s", flush=True)
    rows = []
    for task in TASKS:
        start = time.perf_counter()
        seg = Segmenter(task, device=device, home=home)
        load_s = time.perf_counter() - start
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        start = time.perf_counter()
        labels = seg(image)
        sync(device)
        wall_s = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
        rows.append({
            "task": task, "device": device, "shape": list(shape), "load_s": round(load_s, 2),
            "segment_s": round(wall_s, 2), "peak_gpu_gib": None if peak is None else round(peak, 2),
            "n_structures": len(labels.present_labels()),
            "kernels": seg.parts[0].predictor.kernels.describe(),
        })  # fmt: skip
        print("timing", rows[-1], flush=True)
        del seg
    return rows


def markdown(result: dict) -> str:
    lines = [f"# GPU check ({result['machine']})", "", "## CPU (torch fp32) vs device", "",
             "| task | device | precision | classes | min Dice | mean Dice | voxels equal |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["agreement"]:
        lines.append(
            f"| {r['task']} | {r['device']} | {r['precision']} | {r['n_classes']} | "
            f"{r['min_dice']:.4f} | {r['mean_dice']:.4f} | {100 * r['voxel_agreement']:.3f} % |"
        )
    lines += ["", f"## Wall time and peak GPU memory, {result['timing'][0]['shape']} phantom", "",
              "| task | device | load s | segment s | peak GPU GiB | structures |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["timing"]:
        lines.append(
            f"| {r['task']} | {r['device']} | {r['load_s']} | {r['segment_s']} | "
            f"{r['peak_gpu_gib']} | {r['n_structures']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true", help="tiny models and volumes (dry run)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    result: dict = {"machine": f"{platform.node()}, {gpu}, torch {torch.__version__}"}
    start = time.perf_counter()
    home = weights_home(args.out / "home", ARCH["small" if args.small else "full"])
    print(f"weights home in {time.perf_counter() - start:.1f} s", flush=True)
    result["agreement"] = agreement(home, args.device, args.small)
    result["timing"] = timing(home, args.device, args.small)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2))
    (args.out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
