"""Per-structure statistics of a CT inside a segmentation (numpy/scipy only, no torch).

`compute_statistics(image, label_map)` measures every structure in one pass: volume (mm3, ml),
voxel count, mean/median/std/min/max HU, centroid and bounding box (voxel and world mm), and a
status (`ok`, `incomplete` when it touches the image border, `absent` with NaN values).
`write_statistics` writes JSON or CSV atomically; `read_reference_statistics` reads the
reference tool's `statistics.json`.
"""

from totalseg.stats.formats import (
    ReferenceStructureStats,
    read_reference_statistics,
    read_statistics,
    write_statistics,
)
from totalseg.stats.measures import compute_statistics
from totalseg.stats.segmentation import mask_files, read_segmentation
from totalseg.stats.table import RECORD_COLUMNS, StatsStatus, StructureStats, StructureStatsTable

__all__ = [
    "RECORD_COLUMNS",
    "ReferenceStructureStats",
    "StatsStatus",
    "StructureStats",
    "StructureStatsTable",
    "compute_statistics",
    "mask_files",
    "read_reference_statistics",
    "read_segmentation",
    "read_statistics",
    "write_statistics",
]
