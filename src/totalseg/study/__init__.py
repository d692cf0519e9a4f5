"""Population studies: cohort manifest, distributed runner (Dask), results store (DuckDB and
Parquet), analysis (Spearman, Kolmogorov-Smirnov, Kruskal-Wallis, Wilcoxon rank-sum with
Bonferroni), figures and a self-contained HTML report.

Heavy dependencies (dask, duckdb, pandas, matplotlib) are imported when used.
"""

from totalseg.study.analysis import MEASURES, AnalysisConfig, AnalysisResult, analyze_frame
from totalseg.study.exclusion import apply_exclusions, load_min_volumes, shipped_min_volumes_path
from totalseg.study.manifest import ScanSpec, normalize_sex, read_manifest
from totalseg.study.report import analyze_study, load_study_table, render_html
from totalseg.study.runner import ProgressEvent, StudyConfig, StudySummary, run_study
from totalseg.study.store import DB_NAME, ResultStore, ScanResult
from totalseg.study.worker import PipelineSegmenterFactory, SegmenterFactory, process_scan

__all__ = [
    "DB_NAME",
    "MEASURES",
    "AnalysisConfig",
    "AnalysisResult",
    "PipelineSegmenterFactory",
    "ProgressEvent",
    "ResultStore",
    "ScanResult",
    "ScanSpec",
    "SegmenterFactory",
    "StudyConfig",
    "StudySummary",
    "analyze_frame",
    "analyze_study",
    "apply_exclusions",
    "load_min_volumes",
    "load_study_table",
    "normalize_sex",
    "process_scan",
    "read_manifest",
    "render_html",
    "run_study",
    "shipped_min_volumes_path",
]
