"""Load time and peak RSS: totalseg.load_model_folder vs nnunetv2's predictor initialisation.

Writes a TotalSegmentator-sized random-init model folder (PlainConvUNet, 6 stages 32..320,
128^3 patch, 25 outputs, ~31 M parameters, ~125 MB checkpoint) into a temp dir, then loads it
in child processes (one per run, so peak RSS is per loader) with:
  - totalseg: load_model_folder (restricted unpickler, strict load, eval, requires_grad off)
  - nnunetv2: nnUNetPredictor.initialize_from_trained_model_folder + network.load_state_dict
    (the predictor loads the weights into the network lazily; both are needed to be usable)

Usage: .venv/bin/python benchmarks/model_loading/bench_model_loading.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
folder, which = sys.argv[1], sys.argv[2]
if which == "totalseg":
    from totalseg.models.folder import load_model_folder
else:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
t0 = time.perf_counter()  # imports above are not timed
if which == "totalseg":
    net = load_model_folder(folder, folds=(0,)).networks[0]
else:
    p = nnUNetPredictor(device=torch.device("cpu"), perform_everything_on_device=False)
    p.initialize_from_trained_model_folder(folder, (0,), "checkpoint_final.pth")
    p.network.load_state_dict(p.list_of_parameters[0])
    net = p.network.eval()
elapsed = time.perf_counter() - t0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
n = sum(v.numel() for v in net.parameters())
print(json.dumps({"elapsed_s": elapsed, "peak_rss_mb": rss_mb, "n_params": n}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from totalseg.models.writer import random_model_folder

    tmp = Path(tempfile.mkdtemp(prefix="bench_load_"))
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ.setdefault(k, str(tmp / k))
    folder = random_model_folder(
        tmp / "Dataset991_Bench" / "nnUNetTrainer__nnUNetPlans__3d_fullres",
        n_classes=24,
        patch_size=(128, 128, 128),
        spacing_mm=1.5,
        features_per_stage=(32, 64, 128, 256, 320, 320),
        strides=((1, 1, 1),) + ((2, 2, 2),) * 5,
        kernel_sizes=((3, 3, 3),) * 6,
        trainer_name="nnUNetTrainer",
        mirror_axes=(0, 1, 2),
    )
    size_mb = (folder / "fold_0" / "checkpoint_final.pth").stat().st_size / 1e6
    results: dict[str, list[dict]] = {"totalseg": [], "nnunetv2": []}
    for _ in range(args.repeats):
        for which in ("totalseg", "nnunetv2"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(folder), which],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[which].append(json.loads(out.strip().splitlines()[-1]))
    best = {k: min(r["elapsed_s"] for r in v) for k, v in results.items()}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in results.items()}
    print(f"checkpoint {size_mb:.0f} MB, {results['totalseg'][0]['n_params'] / 1e6:.2f} M params")
    for k in results:
        print(f"{k:9s} load best of {args.repeats}: {best[k]:.2f} s, peak RSS {rss[k]:.0f} MB")
    print(
        f"ratio totalseg/nnunetv2: time {best['totalseg'] / best['nnunetv2']:.2f}, "
        f"peak RSS {rss['totalseg'] / rss['nnunetv2']:.2f}"
    )


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"(benchmark wall {time.perf_counter() - t:.0f} s)")
