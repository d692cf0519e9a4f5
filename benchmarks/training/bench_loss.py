"""nnU-Net's Dice + CE loss vs totalseg's one-pass version on a demo-sized batch.

(2, 105, 64, 64, 64) logits, random labels; forward and backward time of each, alternating,
`--repeat` times, 2 threads. Both give the same loss and gradients (tested in
tests/training/test_training_loss_augment.py).

Usage:
    python benchmarks/training/bench_loss.py --repeat 3
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--classes", type=int, default=105)
    parser.add_argument("--patch", type=int, default=64)
    args = parser.parse_args()

    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from totalseg.training.loss import DiceCELoss

    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    shape = (2, args.classes, *(args.patch,) * 3)
    logits = torch.randn(*shape, generator=g)
    labels = torch.randint(0, args.classes, (2, 1, *shape[2:]), generator=g)
    reference = DC_and_CE_loss(
        {"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
        weight_ce=1, weight_dice=1, dice_class=MemoryEfficientSoftDiceLoss,
    )  # fmt: skip
    ours = DiceCELoss(batch_dice=True)
    times: dict[str, list[tuple[float, float]]] = {"nnunetv2": [], "totalseg": []}
    for _ in range(args.repeat):
        for name, loss_fn in (("nnunetv2", reference), ("totalseg", ours)):
            x = logits.clone().requires_grad_(True)
            t0 = time.perf_counter()
            loss = loss_fn(x, labels)
            t1 = time.perf_counter()
            loss.backward()
            times[name].append((t1 - t0, time.perf_counter() - t1))
    for name, values in times.items():
        fwd = sorted(v[0] for v in values)[len(values) // 2]
        bwd = sorted(v[1] for v in values)[len(values) // 2]
        print(f"{name:9s} forward {fwd:.2f} s, backward {bwd:.2f} s, total {fwd + bwd:.2f} s")
    total = {k: sorted(a + b for a, b in v)[len(v) // 2] for k, v in times.items()}
    print(f"ratio totalseg / nnunetv2 (median totals): {total['totalseg'] / total['nnunetv2']:.2f}")


if __name__ == "__main__":
    main()
