"""Benchmark: the network's kernels on one tile -- torch fp32 / bf16 autocast, OpenVINO f32 / bf16.

One TotalSegmentator-sized PlainConvUNet (6 stages, 32..320 features, 2 convs per stage, 25
logit channels, He-initialised random weights, seed 0) on one random 128^3 tile, with a fixed
number of threads. Each variant runs through totalseg's own code (`inference.kernels`,
`inference.openvino_backend`): one warm-up pass, then `--reps` timed passes; the median is
reported. bf16 variants run only where the CPU has bf16 instructions (as `--precision bf16`
does). Agreement is against torch fp32 on the same tile: argmax agreement and max abs logit
difference. The OpenVINO start-up costs are reported too: conversion (first use), reading the
cached converted model, compiling.

    .venv/bin/python benchmarks/kernels/bench_kernels.py [--threads 2] [--reps 3] \
        [--out benchmarks/kernels/results.md] [--tiny]

`--tiny` (4 stages 8..64, patch 32^3) only checks that the script runs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from totalseg.inference.kernels import detect_cpu, openvino_installed, resolve_kernels, wrap_torch
from totalseg.models.unet import build_network, initialize_he
from totalseg.models.writer import _random_spec

PRESETS = {
    "total": {"features": (32, 64, 128, 256, 320, 320), "patch": 128, "n_out": 25},
    "tiny": {"features": (8, 16, 32, 64), "patch": 32, "n_out": 25},
}
CPU = torch.device("cpu")


def build(preset: dict) -> torch.nn.Module:
    n = len(preset["features"])
    strides = ((1, 1, 1),) + ((2, 2, 2),) * (n - 1)
    spec = _random_spec("PlainConvUNet", preset["features"], strides, ((3, 3, 3),) * n, 2, 3)
    torch.manual_seed(0)
    net = build_network(spec, 1, preset["n_out"])
    initialize_he(net)
    return net.eval()


def timed(network, tile: torch.Tensor, reps: int) -> tuple[float, torch.Tensor]:
    with torch.inference_mode():
        out = network(tile).float()  # warm-up (and the logits compared)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            network(tile)
            times.append(time.perf_counter() - start)
    return statistics.median(times), out


def cpu_line() -> str:
    cpu = detect_cpu()
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]
    return (
        f"CPU: {cpu.model} ({platform.machine()}); flags: {', '.join(shown) or 'none of note'}; "
        f"torch {torch.__version__} capability {cpu.torch_capability}; bf16 offered: "
        f"{'yes' if cpu.has_bf16 else 'no'}"
    )


def openvino_variant(net, precision: str, preset: dict, threads: int, cache: Path) -> tuple:
    from totalseg.inference.openvino_backend import OpenVinoNetwork

    kernels = resolve_kernels("openvino", precision, CPU, parity=False)
    patch = (preset["patch"],) * 3
    start = time.perf_counter()
    ov_net = OpenVinoNetwork(
        net, kernels, n_in=1, patch_size=patch, n_threads=threads, cache_dir=cache
    )
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    ov_net = OpenVinoNetwork(
        net, kernels, n_in=1, patch_size=patch, n_threads=threads, cache_dir=cache
    )
    cached_s = time.perf_counter() - start
    return ov_net, first_s, cached_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/kernels/results.md"))
    args = parser.parse_args()
    preset = PRESETS["tiny" if args.tiny else "total"]
    torch.set_num_threads(args.threads)
    net = build(preset)
    tile = torch.randn((1, 1, *(preset["patch"],) * 3), generator=torch.Generator().manual_seed(1))
    has_bf16 = detect_cpu().has_bf16
    rows: list[tuple[str, float | None, torch.Tensor | None, str]] = []
    reference_s, reference = timed(net, tile, args.reps)
    rows.append(("torch fp32", reference_s, reference, ""))
    if has_bf16:
        bf16 = wrap_torch(net, resolve_kernels("torch", "bf16", CPU, parity=False))
        rows.append(("torch bf16 autocast", *timed(bf16, tile, args.reps), ""))
    else:
        rows.append(("torch bf16 autocast", None, None, "no bf16 instructions"))
    startup = []
    if openvino_installed():
        import openvino

        with tempfile.TemporaryDirectory() as tmp:
            for precision, name in (("fp32", "f32"), ("bf16", "bf16")):
                label = f"OpenVINO {openvino.__version__.split('-')[0]}, hint {name}"
                if precision == "bf16" and not has_bf16:
                    rows.append((label, None, None, "no bf16 instructions"))
                    continue
                ov_net, first_s, cached_s = openvino_variant(
                    net, precision, preset, args.threads, Path(tmp) / precision
                )
                startup.append(f"{label}: first use (convert + cache + compile) {first_s:.1f} s, "
                               f"from the cache (read + compile) {cached_s:.1f} s")  # fmt: skip
                rows.append((label, *timed(ov_net, tile, args.reps), ovp(ov_net)))
    else:
        rows.append(("OpenVINO", None, None, "openvino not installed"))
    text = table(rows, reference_s, reference, args, preset, startup)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"\nwritten to {args.out}")


def ovp(ov_net) -> str:
    return f"compiled as {ov_net.precision}"


def table(rows, reference_s, reference, args, preset, startup) -> str:
    n = len(preset["features"])
    head = [
        f"One PlainConvUNet ({n} stages, {preset['features'][0]}..{max(preset['features'])} "
        f"features, {preset['n_out']} logit channels, random weights) on one "
        f"{preset['patch']}^3 tile, {args.threads} threads, median of {args.reps}.",
        "",
        cpu_line(),
        "",
        "| kernels | s/tile | vs torch fp32 | argmax agreement | max abs logit diff | note |",
        "|---|---|---|---|---|---|",
    ]
    ref_arg = reference.argmax(1)
    for name, seconds, logits, note in rows:
        if seconds is None or logits is None:
            head.append(f"| {name} | - | - | - | - | {note} |")
            continue
        agree = float((logits.argmax(1) == ref_arg).float().mean())
        diff = float((logits - reference).abs().max())
        head.append(
            f"| {name} | {seconds:.2f} | {reference_s / seconds:.2f} | {agree:.5f} | "
            f"{diff:.1e} | {note} |"
        )
    return "\n".join([*head, "", *startup])


if __name__ == "__main__":
    main()
