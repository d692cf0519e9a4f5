"""RTSTRUCT output: a label map -> one RT Structure Set (pydicom) on the source series.

One ROI per structure present, named by the structure, with its SNOMED CT type code as the
RT ROI Identification Code and the algorithm named (ROI Generation Algorithm AUTOMATIC,
"totalseg <version> <task>"). Contours: per slice, every boundary of the mask traced by
marching squares (`skimage.measure.find_contours`, on the 0.5 iso-line between pixel centres)
as a CLOSED_PLANAR contour in patient (LPS) millimetres, referencing the slice's SOP instance.
Several islands give several contours; a hole gives a contour inside its island. Readers fill
nested contours by the even-odd rule (a point is inside when an odd number of contours
encloses it), which recovers the mask at the pixel centres; tests check this by rasterising.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.anatomy import structure_codes
from totalseg.errors import InputError
from totalseg.image import LabelMap
from totalseg.io.dicom_source import SourceSeries, require, save_dataset

__all__ = ["write_rtstruct"]

_LOG = logging.getLogger(__name__)
_SERIES_NUMBER = 9002
_RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"
_STUDY_COMPONENT = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management, as RT systems expect
# the reference tool's 12-colour cycle (as in its NIfTI label table), 0-255, by (label - 1) % 12
_COLOURS = (
    (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255), (255, 128, 0),
    (255, 0, 128), (128, 255, 128), (0, 128, 255), (128, 128, 128), (185, 170, 155), (255, 0, 0),
)  # fmt: skip
_PATIENT_STUDY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "StudyDescription", "SpecificCharacterSet",
)  # fmt: skip


def write_rtstruct(
    labels: LabelMap, source: SourceSeries, path: str | os.PathLike[str], *, task: str
) -> Path:
    """Write the structures of `labels` as closed planar contours; returns the path written."""
    pydicom = require("pydicom")
    present = labels.present_labels()
    if not present:
        raise InputError(
            f"Expected at least one structure to write as RTSTRUCT, got an empty "
            f"segmentation; nothing written to '{path}'."
        )
    ds = _header(pydicom, source, task)
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = [], [], []
    frame_uid = str(source.first.FrameOfReferenceUID)
    n_contours = 0
    for number, value in enumerate(present, start=1):
        name = labels.labels.get(value, f"label_{value}")
        roi, contour, observation = _roi(pydicom, number, value, name, frame_uid, task)
        contour.ContourSequence = list(_contours(pydicom, labels.array == value, source))
        n_contours += len(contour.ContourSequence)
        ds.StructureSetROISequence.append(roi)
        ds.ROIContourSequence.append(contour)
        ds.RTROIObservationsSequence.append(observation)
    _LOG.debug("RTSTRUCT: %d ROIs, %d contours", len(present), n_contours)
    return save_dataset(ds, Path(path))


def _header(pydicom: Any, source: SourceSeries, task: str) -> Any:
    """Patient, study, RT series, equipment, structure set and SOP common modules."""
    from pydicom.dataset import Dataset, FileMetaDataset

    from totalseg import __version__

    first = source.first
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    for keyword in _PATIENT_STUDY:
        ds[keyword] = pydicom.DataElement(keyword, _vr(keyword), first.get(keyword, ""))
    if not ds.SpecificCharacterSet:  # type 1C: only with characters beyond ASCII
        del ds.SpecificCharacterSet
    now = datetime.datetime.now()
    ds.SOPClassUID = _RT_STRUCTURE_SET
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesNumber = _SERIES_NUMBER
    ds.SeriesDescription = f"totalseg {task}"[:64]
    ds.OperatorsName = ""
    ds.Manufacturer = "totalseg"
    ds.ManufacturerModelName = "totalseg"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "totalseg"
    ds.StructureSetName = f"totalseg {task}"[:64]
    ds.StructureSetDate, ds.StructureSetTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.StructureSetDate, ds.StructureSetTime
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    ds.PositionReferenceIndicator = first.get("PositionReferenceIndicator", "")
    ds.ReferencedFrameOfReferenceSequence = [_referenced_frame(pydicom, source)]
    return ds


def _vr(keyword: str) -> str:
    from pydicom.datadict import dictionary_VR

    return str(dictionary_VR(keyword))


def _referenced_frame(pydicom: Any, source: SourceSeries) -> Any:
    from pydicom.dataset import Dataset

    first = source.first
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = [_image_ref(d) for d in source.datasets]
    study = Dataset()
    study.ReferencedSOPClassUID = _STUDY_COMPONENT
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = [series]
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = [study]
    return frame


def _image_ref(image: Any) -> Any:
    from pydicom.dataset import Dataset

    ref = Dataset()
    ref.ReferencedSOPClassUID = image.SOPClassUID
    ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return ref


def _roi(
    pydicom: Any, number: int, value: int, name: str, frame_uid: str, task: str
) -> tuple[Any, Any, Any]:
    from pydicom.dataset import Dataset

    from totalseg import __version__

    roi = Dataset()
    roi.ROINumber = number
    roi.ReferencedFrameOfReferenceUID = frame_uid
    roi.ROIName = name[:64]
    roi.ROIGenerationAlgorithm = "AUTOMATIC"
    roi.ROIGenerationDescription = f"totalseg {__version__} task {task}"[:64]
    contour = Dataset()
    contour.ReferencedROINumber = number
    contour.ROIDisplayColor = list(_COLOURS[(value - 1) % len(_COLOURS)])
    observation = Dataset()
    observation.ObservationNumber = number
    observation.ReferencedROINumber = number
    observation.RTROIInterpretedType = "ORGAN"
    observation.ROIInterpreter = ""
    observation.ROIObservationLabel = name[:16]
    codes = structure_codes(name)
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = codes.type.value, codes.type.scheme
    code.CodeMeaning = codes.type.meaning
    observation.RTROIIdentificationCodeSequence = [code]
    return roi, contour, observation


def _contours(pydicom: Any, mask: np.ndarray, source: SourceSeries) -> Iterator[Any]:
    """CLOSED_PLANAR contours of a (i col, j row, k) mask, slice by slice, in LPS mm."""
    from pydicom.dataset import Dataset

    measure = require("skimage.measure")
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        image = source.datasets[int(k)]
        plane = mask[:, :, k].T  # (row, col)
        rows, cols = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
        corner = np.array([rows[0], cols[0]]) - 1.0  # of the crop, padded so contours close
        crop = np.pad(plane[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], 1)
        for line in measure.find_contours(crop.astype(np.float32), 0.5):
            points_rc = _simplified(line) + corner
            if len(points_rc) < 3:
                continue
            item = Dataset()
            item.ContourImageSequence = [_image_ref(image)]
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(points_rc)
            item.ContourData = _patient_mm(points_rc, image)
            yield item


def _simplified(line: np.ndarray) -> np.ndarray:
    """The closed line without its repeated last point and without the points inside straight
    runs (marching squares puts one on every pixel edge crossed); the shape is unchanged."""
    points = line[:-1] if np.array_equal(line[0], line[-1]) else line
    if len(points) < 3:
        return points
    step_in = points - np.roll(points, 1, axis=0)
    step_out = np.roll(points, -1, axis=0) - points
    turn = np.abs(step_in[:, 0] * step_out[:, 1] - step_in[:, 1] * step_out[:, 0]) > 1e-9
    return points[turn]


def _patient_mm(points_rc: np.ndarray, image: Any) -> list[str]:
    """Row/column pixel coordinates -> flat x, y, z in LPS mm, formatted for DS."""
    iop = np.array([float(v) for v in image.ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in image.PixelSpacing)
    origin = np.array([float(v) for v in image.ImagePositionPatient])
    xyz = (
        origin
        + np.outer(points_rc[:, 1] * col_spacing, iop[:3])
        + np.outer(points_rc[:, 0] * row_spacing, iop[3:])
    )
    return _ds_values(xyz.ravel())


def _ds_values(values: np.ndarray) -> list[str]:
    """Decimal strings rounded to 0.001 mm (at most 16 characters, the DS limit)."""
    return [f"{v:.3f}".rstrip("0").rstrip(".") or "0" for v in values]
