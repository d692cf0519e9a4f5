"""The training-curve figure (matplotlib, Agg backend): losses and validation Dice per epoch."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["plot_training_curves"]

log = logging.getLogger(__name__)


def plot_training_curves(logs: Mapping[str, Sequence[float]], path: str | Path) -> Path | None:
    """Write train/val loss and mean validation Dice against epoch to a PNG (atomic).

    Returns None (and logs why) when matplotlib is not installed (the ``tables`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'totalseg[tables]'); no curve PNG.")
        return None
    epochs = list(range(1, len(logs.get("train_loss", [])) + 1))
    fig = Figure(figsize=(8, 4.5), dpi=100)
    ax = fig.add_subplot(111)
    ax.plot(epochs, logs.get("train_loss", []), color="tab:blue", label="train loss")
    val = [v for v in logs.get("val_loss", [])]
    if any(not math.isnan(v) for v in val):
        ax.plot(epochs, val, color="tab:red", label="val loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (Dice + CE)")
    dice = logs.get("val_dice_mean", [])
    ax2 = ax.twinx()
    if any(not math.isnan(v) for v in dice):
        ax2.plot(epochs, dice, color="tab:green", linestyle="--", label="val Dice (mean)")
    ema = logs.get("val_dice_ema", [])
    if any(not math.isnan(v) for v in ema):
        ax2.plot(epochs, ema, color="tab:green", label="val Dice (EMA)")
    ax2.set_ylabel("Dice")
    ax2.set_ylim(0, 1)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="center right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".png", dir=target.parent)
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
