"""Run TotalSegmentator 2.18 on one file, as its users do (`totalsegmentator(..., ml=True)`).

Called by `common.run_engine` in its own process: `python reference_child.py IN OUT TASK`.
Weights come from `TOTALSEG_WEIGHTS_PATH`, its config from `TOTALSEG_HOME_DIR` (set by the
caller). One patch, for this CPU environment only: nnunetv2's trainer lookup imports every
trainer module, one of which needs torchvision ops that do not load here; every stock trainer
builds the same network for prediction, so the lookup returns `nnUNetTrainer`.
"""

from __future__ import annotations

import sys


def main() -> None:
    source, target, task = sys.argv[1:4]
    import totalsegmentator.nnunet as reference_nnunet
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from totalsegmentator.python_api import totalsegmentator

    reference_nnunet.recursive_find_trainer_class_by_name = lambda name: nnUNetTrainer  # type: ignore[attr-defined]
    totalsegmentator(source, target, ml=True, fast=task == "total-fast", device="cpu", quiet=True)


if __name__ == "__main__":
    main()
