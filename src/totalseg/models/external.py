"""Weights that the reference tool (TotalSegmentator) already installed on this machine.

Users migrating from TotalSegmentator have the official model folders in its weights folder,
resolved as the reference tool resolves it: `$TOTALSEG_WEIGHTS_PATH`, else
`$TOTALSEG_HOME_DIR/nnunet/results`, else `~/.totalsegmentator/nnunet/results` (with HOME `/`,
as in some containers: `/tmp/.totalsegmentator/nnunet/results`). The layout is the same as
totalseg's (`DatasetXXX_name/<trainer>__<plans>__<config>/fold_N/checkpoint_final.pth`), so those
folders are used in place, read-only: nothing is copied or written there. Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["totalsegmentator_weights_dir"]


def totalsegmentator_weights_dir() -> Path:
    """The reference tool's weights folder (which may not exist)."""
    explicit = os.environ.get("TOTALSEG_WEIGHTS_PATH")
    if explicit:
        return Path(explicit)
    home_dir = os.environ.get("TOTALSEG_HOME_DIR")
    if home_dir:
        return Path(home_dir) / "nnunet" / "results"
    user_home = Path.home()
    base = Path("/tmp") if str(user_home) == "/" else user_home
    return base / ".totalsegmentator" / "nnunet" / "results"
