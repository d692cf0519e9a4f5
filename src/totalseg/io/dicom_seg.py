"""DICOM-SEG output: a label map -> one Segmentation instance (highdicom) on the source series.

One segment per structure present, numbered 1..n in label order, each with its name, the
SNOMED CT category / type (and Left / Right modifier) of `anatomy.structure_codes`, and the
algorithm identification (totalseg, its version, the task). Frames reference the source SOP
instances they lie on (`SourceSeries` orders those along the image's k axis).

Encoding: BINARY (1 bit per pixel) with empty frames omitted, so a scan with 117 structures
stores only the slices each structure touches. highdicom also offers LABELMAP (the 2024 Label
Map Segmentation SOP class), more compact still, but validators and archives in use today
(dciodvfy of dicom3tools 2022, most PACS) do not know that SOP class yet.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.anatomy import structure_codes
from totalseg.errors import InputError
from totalseg.image import LabelMap
from totalseg.io.dicom_source import SourceSeries, require, save_dataset

__all__ = ["seg_label_order", "write_dicom_seg"]

_LOG = logging.getLogger(__name__)
_SERIES_NUMBER = 9001  # totalseg outputs: 9001 DICOM-SEG, 9002 RTSTRUCT


def seg_label_order(labels: LabelMap) -> list[int]:
    """The label values present, in segment-number order (segment n holds the n-th)."""
    return labels.present_labels()


def write_dicom_seg(
    labels: LabelMap, source: SourceSeries, path: str | os.PathLike[str], *, task: str
) -> Path:
    """Write the structures of `labels` as one DICOM-SEG file; returns the path written."""
    hd = require("highdicom")
    from totalseg import __version__

    present = seg_label_order(labels)
    if not present:
        raise InputError(
            f"Expected at least one structure to write as DICOM-SEG, got an empty "
            f"segmentation; nothing written to '{path}'."
        )
    algorithm = hd.AlgorithmIdentificationSequence(
        name="totalseg",
        family=hd.sr.CodedConcept("123109", "DCM", "Machine Learning"),
        version=__version__,
        parameters={"task": task},
    )
    descriptions = [
        _segment(hd, number, labels.labels.get(value, f"label_{value}"), algorithm)
        for number, value in enumerate(present, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=list(source.datasets),
        pixel_array=_segment_numbers(labels, present),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="totalseg",
        manufacturer_model_name="totalseg",
        software_versions=__version__,
        device_serial_number="0",
        series_description=f"totalseg {task}"[:64],
        content_label="TOTALSEG",
        content_description=f"totalseg {task} segmentation"[:64],
        content_creator_name="totalseg^",
        omit_empty_frames=True,
    )
    _LOG.debug("DICOM-SEG: %d segments, %d frames", len(present), int(seg.NumberOfFrames))
    return save_dataset(seg, Path(path))


def _segment(hd: Any, number: int, name: str, algorithm: Any) -> Any:
    codes = structure_codes(name)
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=_coded(hd, codes.category),
        segmented_property_type=_coded(hd, codes.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        tracking_id=name[:64],
        tracking_uid=hd.UID(),
    )
    if codes.modifier is not None:
        item = description.SegmentedPropertyTypeCodeSequence[0]
        item.SegmentedPropertyTypeModifierCodeSequence = [_coded(hd, codes.modifier)]
    return description


def _coded(hd: Any, code: Any) -> Any:
    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def _segment_numbers(labels: LabelMap, present: list[int]) -> np.ndarray:
    """(slices, rows, columns) array of segment numbers: label value -> 1..n, others 0."""
    lut = np.zeros(int(labels.array.max()) + 1, dtype=np.uint16)
    lut[present] = np.arange(1, len(present) + 1)
    numbers = lut[labels.array].transpose(2, 1, 0)  # (i col, j row, k) -> (k, row, col)
    return np.ascontiguousarray(numbers.astype(np.uint8 if len(present) < 256 else np.uint16))
