"""The demo model's learning curve over all training sessions: CSV in, PNG out.

``demo_learning_curve.csv`` (beside this script) holds one row per validation: session,
cumulative iteration, validation pseudo Dice (mean over the classes present in the fixed
validation patches) and which validation cases were used. ``--run DIR --session K`` appends the
epochs of a run folder's checkpoint (iterations counted on from the previous session's last row)
and replaces earlier rows of session K. The figure goes to ``docs/demo_learning_curve.png``.

Usage:
    python benchmarks/training/learning_curve.py --run /tmp/demo4/run --session 2 \\
        --validation "seeds 72-79 (12 patches)"
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSV = HERE / "demo_learning_curve.csv"
PNG = HERE.parents[1] / "docs" / "demo_learning_curve.png"
FIELDS = ["session", "iteration", "val_pseudo_dice", "validation_cases", "note"]


def read_rows() -> list[dict[str, str]]:
    with CSV.open(newline="") as f:
        return list(csv.DictReader(f))


def append_run(rows: list[dict[str, str]], run: Path, session: int, validation: str) -> list:
    from totalseg.training.state import load_training_state

    rows = [r for r in rows if int(r["session"]) != session]
    start = max((int(r["iteration"]) for r in rows), default=0)
    state = load_training_state(run / "checkpoint_latest.pth")
    per_epoch = int(state["config"]["iters_per_epoch"])
    for epoch, dice in enumerate(state["logs"]["val_dice_mean"], start=1):
        if not math.isnan(dice):
            rows.append(
                {
                    "session": str(session),
                    "iteration": str(start + epoch * per_epoch),
                    "val_pseudo_dice": f"{dice:.4f}",
                    "validation_cases": validation,
                    "note": "warm start from the previous session's model" if start else "",
                }
            )
    return rows


def plot(rows: list[dict[str, str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100)
    ax = fig.add_subplot(111)
    for session in sorted({int(r["session"]) for r in rows}):
        mine = [r for r in rows if int(r["session"]) == session]
        ax.plot(
            [int(r["iteration"]) for r in mine],
            [float(r["val_pseudo_dice"]) for r in mine],
            marker="o" if len(mine) < 10 else None,
            label=f"session {session}: validation {mine[0]['validation_cases']}",
        )
    ax.set_xlabel("training iteration (batch 2, patch 64^3 at 3 mm)")
    ax.set_ylabel("validation pseudo Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Demo model (v1, 104 structures, 3 mm), phantoms only")
    PNG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PNG)
    print(f"wrote {PNG}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="a run folder to append")
    parser.add_argument("--session", type=int, default=None)
    parser.add_argument("--validation", default="", help="which validation cases the run used")
    args = parser.parse_args()
    rows = read_rows()
    if args.run is not None:
        if args.session is None:
            parser.error("--run needs --session")
        rows = append_run(rows, args.run, args.session, args.validation)
        with CSV.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    plot(rows)


if __name__ == "__main__":
    main()
