"""Evaluate a folder of predictions against a reference dataset, case by case, in parallel.

Structures are matched by name: a prediction with v1 ids and a reference with v2 ids (or
per-class masks) are compared structure by structure through the anatomy registry. The result
is a tidy table, one row per (case, structure, metric) with the edge-case status of the pair
(see `totalseg.metrics.structure`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.anatomy import ClassMapVersion, class_map, resolve_names
from totalseg.anatomy import structures as registry_structures
from totalseg.errors import GeometryError, InputError
from totalseg.image import LabelMap
from totalseg.metrics.box import union_box
from totalseg.metrics.cases import (
    CaseEntry,
    CaseMasks,
    discover_cases,
    load_case,
    masks_from_label_map,
    split_case_ids,
    structure_names,
)
from totalseg.metrics.structure import (
    METRICS,
    StructureResult,
    check_metrics,
    evaluate_masks_in_box,
)
from totalseg.metrics.tables import require_tables_extra

__all__ = [
    "EvaluationConfig",
    "EvaluationResult",
    "Row",
    "evaluate_case",
    "evaluate_case_masks",
    "evaluate_dataset",
    "evaluate_label_maps",
    "match_cases",
    "write_results",
]

log = logging.getLogger(__name__)

#: One table row: case, structure, metric, value, status.
Row = tuple[str, str, str, float, str]
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class EvaluationConfig:
    """What to compute and how to read label values of multilabel files without a label table."""

    tolerance_mm: float = 3.0
    metrics: tuple[str, ...] = METRICS
    pred_class_map: ClassMapVersion = "v2"
    ref_class_map: ClassMapVersion = "v2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", check_metrics(self.metrics))
        if not (self.tolerance_mm >= 0 and self.tolerance_mm < float("inf")):
            raise InputError(f"Expected a tolerance >= 0 mm, got {self.tolerance_mm}.")
        for version in (self.pred_class_map, self.ref_class_map):
            if version not in ("v1", "v2"):
                raise InputError(f"Expected class map 'v1' or 'v2', got {version!r}.")


@dataclass(frozen=True)
class EvaluationResult:
    """Rows of the tidy table plus what was matched, skipped and how."""

    rows: list[Row]
    cases: list[str]
    structures: list[str]
    config: EvaluationConfig
    cases_without_prediction: list[str] = field(default_factory=list)
    cases_without_reference: list[str] = field(default_factory=list)


def match_cases(
    pred: dict[str, CaseEntry], ref: dict[str, CaseEntry]
) -> tuple[list[str], list[str], list[str]]:
    """(matched case ids, reference cases without prediction, predictions without reference)."""
    matched = sorted(set(pred) & set(ref))
    if not matched:
        raise InputError(
            f"Expected predictions and references with matching case ids, got none in common "
            f"(predictions: {', '.join(sorted(pred)[:3])}...; references: "
            f"{', '.join(sorted(ref)[:3])}...); name files/folders by case id."
        )
    return matched, sorted(set(ref) - set(pred)), sorted(set(pred) - set(ref))


def _check_grids(case_id: str, pred: CaseMasks, ref: CaseMasks) -> None:
    if pred.shape != ref.shape or not np.allclose(pred.affine, ref.affine, atol=1e-4):
        diff = float(np.abs(pred.affine - ref.affine).max()) if pred.shape == ref.shape else None
        got = f"shape {pred.shape}" + (f", affine differing by {diff:.3g}" if diff else "")
        raise GeometryError(
            f"Expected the prediction of case {case_id!r} on the reference grid (shape "
            f"{ref.shape}, spacing {tuple(round(s, 4) for s in ref.spacing_mm)} mm), got {got} "
            f"('{pred.source}'); resample the prediction onto the reference grid "
            "(nearest neighbour)."
        )


def evaluate_case_masks(
    ref: CaseMasks,
    pred: CaseMasks,
    names: Sequence[str],
    *,
    config: EvaluationConfig,
    case_id: str = "case",
) -> dict[str, StructureResult]:
    """Metrics of every structure of one case, each restricted to its union bounding box."""
    _check_grids(case_id, pred, ref)
    out: dict[str, StructureResult] = {}
    for name in names:
        box = union_box(ref.box(name), pred.box(name), shape=ref.shape)
        if box is None:
            box = (slice(0, 0), slice(0, 0), slice(0, 0))
        out[name] = evaluate_masks_in_box(
            ref.mask_in(name, box),
            pred.mask_in(name, box),
            spacing_mm=ref.spacing_mm,
            tolerance_mm=config.tolerance_mm,
            voxel_volume_mm3=ref.voxel_volume_mm3,
            metrics=config.metrics,
        )
    return out


def evaluate_label_maps(
    ref: LabelMap,
    pred: LabelMap,
    *,
    structures: Sequence[str] | None = None,
    config: EvaluationConfig | None = None,
) -> dict[str, StructureResult]:
    """Metrics per structure of two multilabel maps on one grid (in memory, no files).

    Label names come from each map's `labels`, else from the config's class maps, so maps in
    different id spaces (v1, v2) are compared by name. Structures default to the common names.
    """
    config = config or EvaluationConfig()
    ref_names = list((dict(ref.labels) or class_map(config.ref_class_map)).values())
    pred_names = set((dict(pred.labels) or class_map(config.pred_class_map)).values())
    names = resolve_names(structures) if structures else [n for n in ref_names if n in pred_names]
    ref_masks = masks_from_label_map(ref, names, version=config.ref_class_map, role="reference")
    pred_masks = masks_from_label_map(pred, names, version=config.pred_class_map, role="prediction")
    return evaluate_case_masks(ref_masks, pred_masks, names, config=config)


def evaluate_case(
    case_id: str,
    pred: CaseEntry,
    ref: CaseEntry,
    *,
    structures: Sequence[str],
    config: EvaluationConfig,
) -> list[Row]:
    """All metric rows of one case (top-level and picklable: runs in worker processes)."""
    names = list(structures)
    ref_masks = load_case(ref, names, version=config.ref_class_map, role="reference")
    pred_masks = load_case(
        pred, names, version=config.pred_class_map, role="prediction",
        grid=(ref_masks.shape, ref_masks.affine),
    )  # fmt: skip
    results = evaluate_case_masks(ref_masks, pred_masks, names, config=config, case_id=case_id)
    return [
        (case_id, name, metric, float(value), result.status)
        for name, result in results.items()
        for metric, value in result.values.items()
    ]


def _select_structures(
    requested: Sequence[str] | None, pred: CaseEntry, ref: CaseEntry, config: EvaluationConfig
) -> list[str]:
    pred_names = structure_names(pred, version=config.pred_class_map)
    ref_names = structure_names(ref, version=config.ref_class_map)
    if requested:
        names = resolve_names(requested)
        for side, have in (("prediction", pred_names), ("reference", ref_names)):
            missing = [n for n in names if n not in have]
            if missing:
                raise InputError(
                    f"Expected the {side} '{(pred if side == 'prediction' else ref).path}' to "
                    f"hold {', '.join(missing[:5])}, got {len(have)} other structures; choose "
                    "other --structures or the matching --class-map."
                )
        return names
    common = set(pred_names)
    rank = {s.name: i for i, s in enumerate(registry_structures())}  # v2 id order, then v1
    names = sorted((n for n in ref_names if n in common), key=lambda n: rank.get(n, len(rank)))
    if not names:
        raise InputError(
            f"Expected structures in common between prediction '{pred.path}' and reference "
            f"'{ref.path}', got none; check --class-map or pass --structures."
        )
    return names


def evaluate_dataset(
    pred_root: str | os.PathLike[str],
    ref_root: str | os.PathLike[str],
    *,
    structures: Sequence[str] | None = None,
    config: EvaluationConfig | None = None,
    split: str | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Evaluate every case present in both folders; `jobs` worker processes (1: in-process).

    Structures default to those both sides can hold (e.g. the 117 v2 names, or the names common
    to a v1 prediction and a v2 reference). `split` ('test', ...) keeps only the reference
    cases of that split in the reference folder's `meta.csv`.
    """
    config = config or EvaluationConfig()
    if jobs < 1:
        raise InputError(f"Expected jobs >= 1, got {jobs}.")
    pred = discover_cases(pred_root, role="prediction")
    ref = discover_cases(ref_root, role="reference")
    if Path(pred_root).is_file() and Path(ref_root).is_file():  # two files: one case, any names
        (entry,) = pred.values()
        (case_id,) = ref
        pred = {case_id: dataclasses.replace(entry, case_id=case_id)}
    if split is not None:
        keep = split_case_ids(ref_root, split)
        ref = {c: e for c, e in ref.items() if c in keep}
        if not ref:
            raise InputError(
                f"Expected reference cases of the {split} split in '{ref_root}', got none of "
                "the cases listed in its meta.csv; check the folder."
            )
        pred = {c: e for c, e in pred.items() if c in keep}
    matched, no_pred, no_ref = match_cases(pred, ref)
    if no_pred:
        log.warning("%d reference case(s) have no prediction: %s", len(no_pred), no_pred[:5])
    names = _select_structures(structures, pred[matched[0]], ref[matched[0]], config)
    rows: list[Row] = []
    if jobs == 1 or len(matched) == 1:
        for i, case_id in enumerate(matched):
            rows.extend(
                evaluate_case(case_id, pred[case_id], ref[case_id], structures=names, config=config)
            )
            if progress:
                progress(i + 1, len(matched), case_id)
    else:
        rows = _evaluate_parallel(matched, pred, ref, names, config, jobs, progress)
    return EvaluationResult(rows, matched, names, config, no_pred, no_ref)


def _evaluate_parallel(
    matched: list[str],
    pred: dict[str, CaseEntry],
    ref: dict[str, CaseEntry],
    names: list[str],
    config: EvaluationConfig,
    jobs: int,
    progress: Progress | None,
) -> list[Row]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    by_case: dict[str, list[Row]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(matched)), mp_context=context) as pool:
        futures = {
            pool.submit(evaluate_case, c, pred[c], ref[c], structures=names, config=config): c
            for c in matched
        }
        try:
            for future in as_completed(futures):
                case_id = futures[future]
                by_case[case_id] = future.result()
                if progress:
                    progress(len(by_case), len(matched), case_id)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [row for c in matched for row in by_case[c]]


def write_results(
    result: EvaluationResult,
    out_dir: str | os.PathLike[str],
    *,
    parquet: bool = True,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    sources: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Write metrics.csv (+ metrics.parquet) and summary.json; return the summary."""
    from totalseg.metrics.tables import summarize, write_json, write_table

    base = Path(out_dir)
    if parquet:
        require_tables_extra("pandas", "pyarrow")
    summary = summarize(result.rows, n_resamples=n_resamples, confidence=confidence, seed=seed)
    summary = {
        "tolerance_mm": result.config.tolerance_mm,
        "metrics": list(result.config.metrics),
        "class_maps": {
            "prediction": result.config.pred_class_map,
            "reference": result.config.ref_class_map,
        },
        **(sources or {}),
        "cases_without_prediction": result.cases_without_prediction,
        "cases_without_reference": result.cases_without_reference,
        **summary,
    }
    write_table(result.rows, base / "metrics.csv")
    if parquet:
        write_table(result.rows, base / "metrics.parquet")
    write_json(summary, base / "summary.json")
    return summary
