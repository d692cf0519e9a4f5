"""Benchmark: nnunetv2's nnUNetPredictor vs totalseg on the same model folder and input.

One invocation runs every engine, each in its own fresh subprocess (so peak RSS is that engine's
alone: imports, model, arrays), one after the other, on the same NIfTI file, file in -> label
file out:

* nnunetv2: `nnUNetPredictor(perform_everything_on_device=False).predict_from_files_sequential`
  (nnU-Net's own path without worker processes; TotalSegmentator uses `predict_from_files`,
  which adds spawned pre-processing/export workers on top).
* totalseg --parity: `Segmenter(model_dir=..., parity=True)` then `write_label_map` (bit-exact).
* totalseg default: `Segmenter(model_dir=...)` (fast mode, see inference/sliding_window.py).
* totalseg default + channels_last (`InferenceOptions(channels_last=True)`).

Wall time and CPU time (user + system) = model loading + prediction + writing, measured inside
each subprocess after its imports; `predict_s` excludes model loading. Peak RSS = `ru_maxrss` of
the subprocess. Engines run interleaved for `--rounds` rounds; medians are reported. The label
maps of all engines are compared with nnunetv2's (identical voxels / per-class Dice).

    .venv/bin/python benchmarks/inference/bench_inference.py [--preset total|small] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PRESETS = {
    # TotalSegmentator-like: 6 stages 32..320, 2+2 convs, patch 128^3 at 1.5 mm, 25 classes;
    # a 150x140x135 volume at 1.5 mm = 8 tiles of 128^3 at nnU-Net's step 0.5.
    "total": {
        "features": (32, 64, 128, 256, 320, 320), "patch": (128, 128, 128), "classes": 24,
        "shape": (150, 140, 135), "spacing": 1.5,
    },
    # a quick run: 4 stages, patch 64^3, 100x90x80 at 1.5 mm (8 tiles)
    "small": {
        "features": (16, 32, 64, 128), "patch": (64, 64, 64), "classes": 8,
        "shape": (100, 90, 80), "spacing": 1.5,
    },
}  # fmt: skip


def make_inputs(preset: dict, root: Path) -> tuple[Path, Path]:
    import nibabel as nib

    from totalseg.models.writer import random_model_folder

    n = len(preset["features"])
    folder = random_model_folder(
        root / "Dataset990_Bench" / "nnUNetTrainer__nnUNetPlans__3d_fullres",
        n_classes=preset["classes"], patch_size=preset["patch"], spacing_mm=preset["spacing"],
        features_per_stage=preset["features"], strides=((1, 1, 1),) + ((2, 2, 2),) * (n - 1),
        kernel_sizes=((3, 3, 3),) * n, seed=0, trainer_name="nnUNetTrainer",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    shape = preset["shape"]
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    body = (grid**2 / 0.8**2).sum(0) < 1
    ct = np.where(body, 40.0, -1000.0) + rng.normal(0, 30, size=shape)
    affine = np.diag([-preset["spacing"], -preset["spacing"], preset["spacing"], 1.0])
    image = root / "case_0000.nii.gz"
    nib.save(nib.Nifti1Image(ct.astype(np.int16), affine), image)
    return folder, image


def run_nnunet(folder: Path, image: Path, out: Path) -> dict:
    import torch
    from nnunetv2.inference import predict_from_raw_data as predict
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    # the trainer lookup imports every trainer module and one needs torchvision ops that do not
    # load in this CPU environment; all stock trainers build the same network
    predict.recursive_find_trainer_class_by_name = lambda name: nnUNetTrainer
    start = time.perf_counter()
    predictor = predict.nnUNetPredictor(
        tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
        perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
        verbose_preprocessing=False, allow_tqdm=False,
    )  # fmt: skip
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=(0,))
    loaded = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    predictor.predict_from_files_sequential([[str(image)]], str(out), False, True)
    end = time.perf_counter()
    return {"wall_s": end - start, "predict_s": end - loaded, "output": str(out / "case.nii.gz")}


def run_totalseg(folder: Path, image: Path, out: Path, mode: str) -> dict:
    from totalseg.io import write_label_map
    from totalseg.pipeline import Segmenter, SegmentOptions

    start = time.perf_counter()
    options = SegmentOptions(mirroring=False, channels_last=mode == "channels_last")
    segmenter = Segmenter(model_dir=folder, device="cpu", parity=mode == "parity", options=options)
    loaded = time.perf_counter()
    labels = segmenter(image)
    path = write_label_map(labels, out / "case.nii.gz", header_from=image)
    end = time.perf_counter()
    return {"wall_s": end - start, "predict_s": end - loaded, "output": str(path)}


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    folder, image, out = Path(args.folder), Path(args.image), Path(args.out)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_at_start = usage.ru_utime + usage.ru_stime
    if args.engine == "nnunetv2":
        result = run_nnunet(folder, image, out)
    else:
        result = run_totalseg(folder, image, out, args.engine.split(":")[1])
    result["cpu_at_start_s"] = cpu_at_start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["cpu_s"] = usage.ru_utime + usage.ru_stime - result.pop("cpu_at_start_s")
    print("RESULT " + json.dumps(result))


def compare(reference: Path, other: Path) -> str:
    import nibabel as nib

    a = np.asarray(nib.load(reference).dataobj)
    b = np.asarray(nib.load(other).dataobj)
    if np.array_equal(a, b):
        return "identical"
    dice = []
    for v in sorted((set(np.unique(a)) | set(np.unique(b))) - {0}):
        x, y = a == v, b == v
        dice.append(2 * (x & y).sum() / (x.sum() + y.sum()))
    return f"{(a != b).mean() * 100:.3f}% voxels differ, min Dice {min(dice):.5f}"


def run_child(engine: str, folder: Path, image: Path, out: Path, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--folder", str(folder),
           "--image", str(image), "--out", str(out), "--threads", str(threads)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="total")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per engine")
    parser.add_argument("--engines", default="nnunetv2,totalseg:parity,totalseg:fast,"
                        "totalseg:channels_last")  # fmt: skip
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("engine", "folder", "image", "out"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    preset = PRESETS[args.preset]
    engines = args.engines.split(",")
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmp:
        root = Path(tmp)
        folder, image = make_inputs(preset, root)
        print(f"preset {args.preset}: {preset}, threads {args.threads}, rounds {args.rounds}")
        runs: dict[str, list[dict]] = {e: [] for e in engines}
        for r in range(args.rounds):
            for engine in engines:
                out = root / f"{engine.replace(':', '_')}_{r}"
                res = run_child(engine, folder, image, out, args.threads)
                runs[engine].append(res)
                print(f"  round {r + 1} {engine:24s} wall {res['wall_s']:8.1f} s  predict "
                      f"{res['predict_s']:8.1f} s  cpu {res['cpu_s']:8.1f} s  peak RSS "
                      f"{res['peak_rss_mb']:7.0f} MB", flush=True)  # fmt: skip
        keys = ("wall_s", "predict_s", "cpu_s", "peak_rss_mb")
        med = {e: {k: float(np.median([x[k] for x in rs])) for k in keys} for e, rs in runs.items()}
        print("median over rounds:")
        for engine in engines:
            m = med[engine]
            line = (f"{engine:24s} wall {m['wall_s']:8.1f} s  predict {m['predict_s']:8.1f} s  "
                    f"cpu {m['cpu_s']:8.1f} s  peak RSS {m['peak_rss_mb']:7.0f} MB")  # fmt: skip
            if "nnunetv2" in med and engine != "nnunetv2":
                ref = med["nnunetv2"]
                same = compare(Path(runs["nnunetv2"][0]["output"]), Path(runs[engine][0]["output"]))
                ratio_t = m["wall_s"] / ref["wall_s"]
                ratio_c = m["cpu_s"] / ref["cpu_s"]
                ratio_m = m["peak_rss_mb"] / ref["peak_rss_mb"]
                line += (f"  | wall x{ratio_t:.2f}  cpu x{ratio_c:.2f}  RSS x{ratio_m:.2f}  "
                         f"labels: {same}")  # fmt: skip
            print(line)


if __name__ == "__main__":
    main()
