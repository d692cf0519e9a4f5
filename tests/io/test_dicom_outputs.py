"""DICOM-SEG and RTSTRUCT outputs: validated by dciodvfy, read back, equal to the label map.

Synthetic series (LPS axial, oblique, reversed slice order) with known masks (islands, holes),
the shared real series (anonymised: UIDs back-filled), and `segment` end to end.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
hd = pytest.importorskip("highdicom")
skimage_draw = pytest.importorskip("skimage.draw")

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian  # noqa: E402

from totalseg.image import LabelMap  # noqa: E402
from totalseg.io.dicom import read_dicom_series  # noqa: E402
from totalseg.io.dicom_seg import write_dicom_seg  # noqa: E402
from totalseg.io.dicom_source import source_series  # noqa: E402
from totalseg.io.rtstruct import write_rtstruct  # noqa: E402

SHARED_CT = (
    Path(__file__).resolve().parents[2].parent / "shared/data/totalsegmentator/example_ct_dicom"
)
needs_shared = pytest.mark.skipif(not SHARED_CT.is_dir(), reason=f"no shared series {SHARED_CT}")
needs_dciodvfy = pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy not installed (Debian package dicom3tools: apt-get install dicom3tools)",
)
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
_C30, _S30, _C20, _S20 = 0.866025, 0.5, 0.939693, 0.34202
OBLIQUE = (_C30, _S30, 0.0, round(-_S30 * _C20, 6), round(_C30 * _C20, 6), _S20)
ROWS, COLS, N = 48, 56, 6


def _body_slice(k: int) -> np.ndarray:
    """A CT-like slice: an ellipse of soft tissue (40 HU and up) in air (-1000 HU)."""
    yy, xx = np.mgrid[:ROWS, :COLS]
    inside = ((yy - ROWS / 2) / (ROWS / 3)) ** 2 + ((xx - COLS / 2) / (COLS / 3)) ** 2 < 1
    return np.where(inside, 40 + k + (xx % 7), -1000).astype("<i2")


LABELS = {5: "liver", 3: "kidney_left", 90: "lung_vessels"}  # the last: a generic code


def write_series(
    folder: Path, *, iop: Sequence[float] = AXIAL, reverse: bool = False, n: int = N
) -> None:
    """Slice k at origin + 2.5 k mm along the normal, files named in (reversed) order."""
    row, col = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row, col)
    study, series, frame = (pydicom.uid.generate_uid() for _ in range(3))
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "Test^Synthetic", "synthetic"
        ds.Rows, ds.Columns = ROWS, COLS
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        position = np.array([-40.0, 30.0, 100.0]) + 2.5 * k * normal
        ds.ImagePositionPatient = [round(float(v), 6) for v in position]
        ds.ImageOrientationPatient = list(iop)
        ds.PixelSpacing = [0.8, 0.9]
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.InstanceNumber = k + 1
        ds.PixelData = _body_slice(k).tobytes()
        ds.save_as(folder / f"IM{(n - 1 - k) if reverse else k:04d}", enforce_file_format=True)


def known_labels(image) -> LabelMap:
    """liver: a ring (a hole) on slices 1-4; kidney_left: two islands on slices 2-3."""
    i, j = np.meshgrid(np.arange(image.shape[0]), np.arange(image.shape[1]), indexing="ij")
    r = np.hypot(i - 20, j - 22)
    array = np.zeros(image.shape, np.uint8)
    for k in range(1, 5):
        array[:, :, k][(r < 17) & (r >= 6 + k)] = 5
    for k in (2, 3):
        array[44:50, 5:12, k] = 3
        array[44:50, 30:40, k] = 3
    array[2:4, 40:44, 0] = 90
    return LabelMap(array, image.affine, LABELS)


def validator_errors(path: Path) -> list[str]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if "Error" in line]


def decoded_seg(path: Path, source) -> np.ndarray:
    """The SEG as a label map on the image grid (i col, j row, k), values from LABELS."""
    seg = hd.seg.segread(path)
    uids = [str(ds.SOPInstanceUID) for ds in source.datasets]
    numbers = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, relabel=False
    )
    by_name = {name: value for value, name in LABELS.items()}
    lut = np.zeros(len(seg.SegmentSequence) + 1, np.uint8)
    for item in seg.SegmentSequence:
        lut[int(item.SegmentNumber)] = by_name.get(str(item.SegmentLabel), 255)
    return lut[np.asarray(numbers)].transpose(2, 1, 0)


def rasterised_rtstruct(path: Path, source, shape) -> dict[str, np.ndarray]:
    """Each ROI filled by the even-odd rule at the pixel centres, on the image grid."""
    ds = pydicom.dcmread(path)
    by_uid = {str(d.SOPInstanceUID): k for k, d in enumerate(source.datasets)}
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    out = {}
    for roi in ds.ROIContourSequence:
        mask = np.zeros(shape, bool)
        for contour in roi.ContourSequence:
            k = by_uid[str(contour.ContourImageSequence[0].ReferencedSOPInstanceUID)]
            image = source.datasets[k]
            iop = np.array(image.ImageOrientationPatient, float)
            xyz = np.array(contour.ContourData, float).reshape(-1, 3) - np.array(
                image.ImagePositionPatient, float
            )
            assert np.allclose(xyz @ np.cross(iop[:3], iop[3:]), 0, atol=1e-2)  # planar, on k
            rows = xyz @ iop[3:] / float(image.PixelSpacing[0])
            cols = xyz @ iop[:3] / float(image.PixelSpacing[1])
            filled = skimage_draw.polygon2mask((shape[1], shape[0]), np.c_[rows, cols])
            mask[:, :, k] ^= filled.T
        out[names[int(roi.ReferencedROINumber)]] = mask
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(params=["axial", "oblique", "reversed"])
def series(request, tmp_path: Path) -> Path:
    folder = tmp_path / request.param
    folder.mkdir()
    iop = OBLIQUE if request.param == "oblique" else AXIAL
    write_series(folder, iop=iop, reverse=request.param == "reversed")
    return folder


def test_dicom_seg_decodes_to_the_label_map(series: Path, tmp_path: Path) -> None:
    image = read_dicom_series(series)
    labels = known_labels(image)
    source = source_series(series, image)
    path = write_dicom_seg(labels, source, tmp_path / "seg.dcm", task="demo")
    assert np.array_equal(decoded_seg(path, source), labels.array)
    seg = hd.seg.segread(path)
    assert [str(s.SegmentLabel) for s in seg.SegmentSequence] == ["kidney_left", "liver",
                                                                   "lung_vessels"]  # fmt: skip
    kidney = seg.SegmentSequence[0]
    assert kidney.SegmentedPropertyTypeCodeSequence[0].CodeValue == "64033007"
    modifier = kidney.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence
    assert modifier[0].CodeMeaning == "Left"
    assert seg.SegmentSequence[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "91723000"
    algorithm = kidney.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "totalseg" and "demo" in str(algorithm.AlgorithmParameters)
    referenced = {
        str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        for f in seg.PerFrameFunctionalGroupsSequence
    }
    assert referenced <= {str(d.SOPInstanceUID) for d in source.datasets}
    n_nonempty = sum(int(np.any(labels.array[:, :, k] == v)) for v in LABELS for k in range(N))
    assert int(seg.NumberOfFrames) == n_nonempty  # empty frames omitted


def test_rtstruct_rasterises_to_the_label_map(series: Path, tmp_path: Path) -> None:
    image = read_dicom_series(series)
    labels = known_labels(image)
    source = source_series(series, image)
    path = write_rtstruct(labels, source, tmp_path / "rt.dcm", task="demo")
    masks = rasterised_rtstruct(path, source, image.shape)
    for value, name in LABELS.items():
        assert np.array_equal(masks[name], labels.array == value), name  # exact at centres
    ds = pydicom.dcmread(path)
    liver = next(r for r in ds.ROIContourSequence if int(r.ReferencedROINumber) == 2)
    assert len(liver.ContourSequence) == 2 * 4  # ring: outer + hole on each of 4 slices
    assert {c.ContourGeometricType for c in liver.ContourSequence} == {"CLOSED_PLANAR"}


@needs_dciodvfy
def test_outputs_pass_dciodvfy(series: Path, tmp_path: Path) -> None:
    image = read_dicom_series(series)
    labels, source = known_labels(image), source_series(series, image)
    assert validator_errors(write_dicom_seg(labels, source, tmp_path / "s.dcm", task="t")) == []
    assert validator_errors(write_rtstruct(labels, source, tmp_path / "r.dcm", task="t")) == []


@needs_shared
def test_shared_series_uids_are_back_filled_once_and_stably(caplog) -> None:
    image = read_dicom_series(SHARED_CT)
    with caplog.at_level(logging.WARNING, logger="totalseg.io.dicom_source"):
        first = source_series(SHARED_CT, image)
    assert len([r for r in caplog.records if "lacks" in r.getMessage()]) == 1
    second = source_series(SHARED_CT, image)
    for a, b in zip(first.datasets, second.datasets, strict=True):
        assert a.SOPInstanceUID == a.file_meta.MediaStorageSOPInstanceUID
        assert a.SOPClassUID == CTImageStorage
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
            assert a.get(keyword) and a.get(keyword) == b.get(keyword)


@needs_shared
def test_shared_series_outputs_agree_and_validate(tmp_path: Path) -> None:
    image = read_dicom_series(SHARED_CT)
    array = np.zeros(image.shape, np.uint8)
    array[200:300, 150:260, 3:15] = 5
    array[240:260, 190:220, 5:12] = 0  # a hole
    array[100:140, 300:330, 8:18] = 3
    labels = LabelMap(array, image.affine, LABELS)
    source = source_series(SHARED_CT, image)
    seg = write_dicom_seg(labels, source, tmp_path / "seg.dcm", task="demo")
    rt = write_rtstruct(labels, source, tmp_path / "rt.dcm", task="demo")
    assert np.array_equal(decoded_seg(seg, source), array)
    masks = rasterised_rtstruct(rt, source, image.shape)
    assert dice(masks["liver"], array == 5) >= 0.95
    assert dice(masks["kidney_left"], array == 3) >= 0.95
    if shutil.which("dciodvfy"):
        assert validator_errors(seg) == [] and validator_errors(rt) == []


# ---------------------------------------------------------------- `totalseg segment` end to end


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A random-init nnU-Net folder over three structures (fast; the output is arbitrary)."""
    from totalseg.models.writer import random_model_folder

    folder = tmp_path_factory.mktemp("model") / "Dataset999_Tiny" / "nnUNetTrainer__plans__3d"
    return random_model_folder(
        folder, n_classes=3, patch_size=(16, 16, 16), spacing_mm=2.0, seed=3,
        label_names=["liver", "spleen", "kidney_left"], features_per_stage=(4, 8),
        strides=((1, 1, 1), (2, 2, 2)), kernel_sizes=((3, 3, 3),) * 2,
    )  # fmt: skip


def test_segment_writes_nifti_seg_and_rtstruct_that_agree(
    tiny_model: Path, tmp_path: Path, capsys
) -> None:
    from totalseg.cli.app import main
    from totalseg.io import read_label_map

    folder = tmp_path / "series"
    folder.mkdir()
    write_series(folder, iop=OBLIQUE, reverse=True)
    out = tmp_path / "out" / "case.nii.gz"
    argv = ["segment", "-i", str(folder), "-o", str(out), "--model-dir", str(tiny_model),
            "--ml", "--device", "cpu", "--no-download"]  # fmt: skip
    for kind in ("nifti", "dicom-seg", "rtstruct"):
        argv += ["--output-type", kind]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    seg_path, rt_path = out.parent / "case.seg.dcm", out.parent / "case.rtstruct.dcm"
    assert f"wrote {seg_path}" in printed and f"wrote {rt_path}" in printed
    labels = read_label_map(out)
    assert labels.present_labels(), "the random model found nothing: the test checks nothing"
    image = read_dicom_series(folder)
    source = source_series(folder, image)
    names = dict(labels.labels)
    seg = hd.seg.segread(seg_path)
    assert [str(s.SegmentLabel) for s in seg.SegmentSequence] == [
        names[v] for v in labels.present_labels()
    ]
    numbers = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[str(d.SOPInstanceUID) for d in source.datasets],
        combine_segments=True, relabel=False,
    )  # fmt: skip
    lut = np.array([0, *labels.present_labels()])
    assert np.array_equal(lut[np.asarray(numbers)].transpose(2, 1, 0), labels.array)
    masks = rasterised_rtstruct(rt_path, source, image.shape)
    for value in labels.present_labels():
        assert np.array_equal(masks[names[value]], labels.array == value)


def test_segment_writes_exactly_the_dicom_file_named(tiny_model: Path, tmp_path: Path) -> None:
    from totalseg.cli.app import main

    folder = tmp_path / "series"
    folder.mkdir()
    write_series(folder)
    out = tmp_path / "seg.dcm"
    argv = ["segment", "-i", str(folder), "-o", str(out), "--model-dir", str(tiny_model),
            "--device", "cpu", "--output-type", "dicom-seg"]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.dcm", "series"]
    assert pydicom.dcmread(out).Modality == "SEG"


def test_dicom_output_of_a_nifti_input_is_one_line(tmp_path: Path, capsys) -> None:
    import nibabel as nib

    from totalseg.cli.app import main

    ct = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), ct)
    argv = ["segment", "-i", str(ct), "-o", str(tmp_path / "seg.dcm"), "--task", "demo",
            "--output-type", "rtstruct"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Expected a DICOM folder or zip as input" in err
    assert not (tmp_path / "seg.dcm").exists()


def test_unknown_output_type_is_refused() -> None:
    from totalseg.errors import ConfigError
    from totalseg.options import SegmentOptions

    with pytest.raises(ConfigError, match="dicom-seg"):
        SegmentOptions(output_types=("nifti", "dicomseg"))
    assert SegmentOptions(output_types="rtstruct,nifti,rtstruct").output_types == (
        "rtstruct",
        "nifti",
    )


@pytest.mark.slow
@needs_shared
def test_real_series_demo_end_to_end(tmp_path: Path) -> None:
    """The issue's command on the shared series: `--task demo`, all three outputs (~1 min)."""
    from totalseg.cli.app import main
    from totalseg.io import read_label_map

    out = tmp_path / "seg.nii.gz"
    argv = ["segment", "-i", str(SHARED_CT), "-o", str(out), "--task", "demo", "--ml",
            "--device", "cpu", "--output-type", "nifti", "--output-type", "dicom-seg",
            "--output-type", "rtstruct"]  # fmt: skip
    assert main(argv) == 0
    labels = read_label_map(out)
    image = read_dicom_series(SHARED_CT)
    source = source_series(SHARED_CT, image)
    seg_path, rt_path = tmp_path / "seg.seg.dcm", tmp_path / "seg.rtstruct.dcm"
    seg = hd.seg.segread(seg_path)
    numbers = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[str(d.SOPInstanceUID) for d in source.datasets],
        combine_segments=True, relabel=False,
    )  # fmt: skip
    lut = np.array([0, *labels.present_labels()])
    assert np.array_equal(lut[np.asarray(numbers)].transpose(2, 1, 0), labels.array)
    masks = rasterised_rtstruct(rt_path, source, image.shape)
    names = dict(labels.labels)
    for value in labels.present_labels():
        truth = labels.array == value
        if truth.sum() > 1000:
            assert dice(masks[names[value]], truth) >= 0.95, names[value]
    if shutil.which("dciodvfy"):
        assert validator_errors(seg_path) == [] and validator_errors(rt_path) == []
