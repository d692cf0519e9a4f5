"""DICOM series input: synthetic series with known answers, every error path, the shared CT."""

from __future__ import annotations

import logging
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless  # noqa: E402

from totalseg.errors import (  # noqa: E402
    DicomError,
    ImageFileError,
    MissingDependencyError,
)
from totalseg.io.dicom import SeriesInfo, list_series, read_dicom_series  # noqa: E402

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "totalsegmentator"
SHARED_CT = SHARED / "example_ct_dicom"
SHARED_SEG = SHARED / "example_seg_dicom.nii.gz"
needs_shared = pytest.mark.skipif(
    not SHARED_CT.is_dir(), reason=f"shared DICOM data not found at {SHARED_CT}"
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
_C30, _S30, _C20, _S20 = 0.866025, 0.5, 0.939693, 0.34202
OBLIQUE = (_C30, _S30, 0.0, round(-_S30 * _C20, 6), round(_C30 * _C20, 6), _S20)
ROWS, COLS, N = 8, 10, 5
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def raw_pattern(n: int = N, rows: int = ROWS, cols: int = COLS) -> np.ndarray:
    """Stored value 1000 + 100 k + 10 r + c tells slice k, row r, column c apart."""
    k, r, c = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    return (1000 + 100 * k + 10 * r + c).astype(np.uint16)


def write_slice(path: Path, raw: np.ndarray, position: Sequence[float], **tags: object) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesDescription = "synthetic"
    ds.Rows, ds.Columns = raw.shape[:2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImagePositionPatient = [round(float(v), 6) for v in position]
    ds.ImageOrientationPatient = list(AXIAL)
    ds.PixelSpacing = [0.7, 0.9]
    ds.SliceThickness = 5.0  # deliberately unlike the true step: it must be ignored
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = raw.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def normal_of(iop: Sequence[float]) -> np.ndarray:
    row, col = np.array(iop[:3]), np.array(iop[3:])
    return np.cross(row / np.linalg.norm(row), col / np.linalg.norm(col))


def write_series(
    folder: Path,
    *,
    iop: Sequence[float] = AXIAL,
    origin: Sequence[float] = (-10.0, 20.0, 30.0),
    step_mm: float = 2.5,
    raw: np.ndarray | None = None,
    file_order: Sequence[int] | None = None,
    prefix: str = "IM",
    **tags: object,
) -> list[Path]:
    """Slice k (content raw[k]) lies at origin + k * step_mm * normal; no file extension."""
    raw = raw_pattern() if raw is None else raw
    order = list(range(len(raw))) if file_order is None else list(file_order)
    paths = []
    for k in range(len(raw)):
        position = np.array(origin) + k * step_mm * normal_of(iop)
        path = folder / f"{prefix}{order[k]:04d}"
        write_slice(
            path,
            raw[k],
            position,
            ImageOrientationPatient=list(iop),
            InstanceNumber=order[k] + 1,
            **tags,
        )
        paths.append(path)
    return paths


def world_of_voxels(image, ijk: np.ndarray) -> np.ndarray:
    return (image.affine @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]


# ---------------------------------------------------------------- known answers


def test_axial_series_known_answer(tmp_path: Path) -> None:
    write_series(tmp_path)
    image = read_dicom_series(tmp_path)
    assert image.shape == (COLS, ROWS, N)
    assert image.dtype == np.int16
    assert image.spacing_mm == pytest.approx((0.9, 0.7, 2.5))
    expected = np.array([[-0.9, 0, 0, 10.0], [0, -0.7, 0, -20.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(image.affine, expected, atol=1e-9)
    assert image.orientation == ("L", "P", "S")
    np.testing.assert_array_equal(image.array, raw_pattern().transpose(2, 1, 0).astype(int) - 1024)


def test_reverse_stored_order_gives_same_volume(tmp_path: Path) -> None:
    forward = read_dicom_series(write_series(tmp_path / "fwd")[0].parent)
    backward_dir = tmp_path / "bwd"
    write_series(backward_dir, file_order=range(N - 1, -1, -1))
    backward = read_dicom_series(backward_dir)
    np.testing.assert_array_equal(backward.array, forward.array)
    np.testing.assert_allclose(backward.affine, forward.affine, atol=1e-9)


@pytest.mark.parametrize(
    ("iop", "step_mm"),
    [(AXIAL, 2.5), (AXIAL, -2.5), (CORONAL, 1.25), (SAGITTAL, 3.0), (OBLIQUE, 2.5)],
    ids=["axial", "axial-descending", "coronal", "sagittal", "oblique"],
)
def test_voxel_centres_match_dicom_positions(
    tmp_path: Path, iop: Sequence[float], step_mm: float
) -> None:
    """Each voxel's value tells which file/row/column it came from; its world position must be
    that file's ImagePositionPatient + column * column spacing * row cosine + row * ..."""
    origin = np.array([-12.5, 40.0, -300.0])
    write_series(tmp_path, iop=iop, origin=origin, step_mm=step_mm, PixelSpacing=[0.7, 0.9])
    image = read_dicom_series(tmp_path)
    row_cos, col_cos = np.array(iop[:3]), np.array(iop[3:])
    row_cos, col_cos = row_cos / np.linalg.norm(row_cos), col_cos / np.linalg.norm(col_cos)
    ijk = np.array(
        [[i, j, k] for i in (0, 3, COLS - 1) for j in (0, 5, ROWS - 1) for k in range(N)]
    )
    stored = image.array[tuple(ijk.T)].astype(int) + 1024 - 1000
    file_k, row, col = stored // 100, (stored // 10) % 10, stored % 10
    positions = origin + np.round(file_k[:, None] * step_mm * normal_of(iop), 6)
    lps = positions + (col * 0.9)[:, None] * row_cos + (row * 0.7)[:, None] * col_cos
    ras = lps * np.array([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(world_of_voxels(image, ijk), ras, atol=1e-4)
    assert image.spacing_mm == pytest.approx((0.9, 0.7, abs(step_mm)), abs=1e-5)
    # k runs along the slice normal (in LPS), whatever order the files were written in
    k_lps = (LPS_TO_RAS @ image.affine)[:3, 2]
    np.testing.assert_allclose(k_lps / np.linalg.norm(k_lps), normal_of(iop), atol=1e-5)


def test_hand_computed_oblique_affine(tmp_path: Path) -> None:
    origin = np.array([5.0, -7.0, 11.0])
    write_series(tmp_path, iop=OBLIQUE, origin=origin, step_mm=2.5)
    image = read_dicom_series(tmp_path)
    row_cos, col_cos = np.array(OBLIQUE[:3]), np.array(OBLIQUE[3:])
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = 0.9 * row_cos, 0.7 * col_cos
    lps[:3, 2], lps[:3, 3] = 2.5 * np.cross(row_cos, col_cos), origin
    np.testing.assert_allclose(image.affine, LPS_TO_RAS @ lps, atol=1e-5)


def test_float32_when_rescale_is_not_integral(tmp_path: Path) -> None:
    write_series(tmp_path, RescaleSlope=0.5, RescaleIntercept=-1024.25)
    image = read_dicom_series(tmp_path)
    assert image.dtype == np.float32
    expected = raw_pattern().transpose(2, 1, 0) * 0.5 - 1024.25
    np.testing.assert_array_equal(image.array, expected.astype(np.float32))


def test_float32_when_int16_would_overflow(tmp_path: Path) -> None:
    raw = raw_pattern()
    raw[-1, 0, 0] = 40000
    write_series(tmp_path, raw=raw, RescaleIntercept=0)
    image = read_dicom_series(tmp_path)
    assert image.dtype == np.float32
    assert image.array[0, 0, N - 1] == 40000.0
    np.testing.assert_array_equal(image.array[..., 0], raw[0].T.astype(np.float32))


def test_skips_non_dicom_files_and_reads_nested_files_without_extension(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_series(tmp_path / "a" / "b")
    (tmp_path / "README").write_text("not a DICOM file\n")
    dicomdir = Dataset()  # DICOM, but no image geometry (like DICOMDIR or an SR)
    dicomdir.file_meta = FileMetaDataset()
    dicomdir.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    dicomdir.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    dicomdir.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dicomdir.PatientName = "x"
    dicomdir.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    with caplog.at_level(logging.DEBUG, logger="totalseg.io.dicom"):
        image = read_dicom_series(tmp_path)
    assert image.shape == (COLS, ROWS, N)
    assert "'README'" in caplog.text and "not DICOM" in caplog.text
    assert "'DICOMDIR'" in caplog.text
    assert list_series(tmp_path) == [
        SeriesInfo("1.2.826.0.1.3680043.8.498.1", "CT", N, "synthetic")
    ]


def test_reads_raw_dicom_without_preamble(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "src")
    (tmp_path / "raw").mkdir()
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.preamble, ds.file_meta = None, FileMetaDataset()
        ds.save_as(tmp_path / "raw" / path.name, implicit_vr=True, little_endian=True)
    assert (tmp_path / "raw" / paths[0].name).read_bytes()[:2] == b"\x08\x00"
    image = read_dicom_series(tmp_path / "raw")
    np.testing.assert_array_equal(image.array, read_dicom_series(tmp_path / "src").array)


def test_list_series_and_choose_one(tmp_path: Path) -> None:
    write_series(tmp_path / "one", SeriesInstanceUID="1.2.3.1", SeriesDescription="first")
    write_series(tmp_path / "two", raw=raw_pattern(n=3), SeriesInstanceUID="1.2.3.2", Modality="CT")
    assert list_series(tmp_path) == [
        SeriesInfo("1.2.3.1", "CT", N, "first"),
        SeriesInfo("1.2.3.2", "CT", 3, "synthetic"),
    ]
    assert read_dicom_series(tmp_path, series_uid="1.2.3.2").shape == (COLS, ROWS, 3)
    assert read_dicom_series(tmp_path, series_uid="1.2.3.1").shape == (COLS, ROWS, N)


def test_reads_series_from_zip(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "series")
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in paths:
            zf.write(path, f"study/series/{path.name}")
        zf.writestr("study/README.txt", "hello")
    image = read_dicom_series(archive)
    np.testing.assert_array_equal(image.array, read_dicom_series(tmp_path / "series").array)
    assert list_series(archive)[0].n_slices == N


def test_gantry_tilt_gives_a_sheared_affine_through_every_slice_position(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    positions = [(-10.0, 20.0 + 0.8 * k, 30.0 + 2.5 * k) for k in range(N)]  # drifts along y
    for k, position in enumerate(positions):
        write_slice(tmp_path / f"IM{k}", raw_pattern()[k], position)
    with caplog.at_level(logging.WARNING, logger="totalseg.io.dicom"):
        image = read_dicom_series(tmp_path)
    assert "gantry tilt" in caplog.text
    centres = world_of_voxels(image, np.array([[0, 0, k] for k in range(N)]))
    np.testing.assert_allclose(centres, np.array(positions) * [-1, -1, 1], atol=1e-6)


def test_uneven_steps_warn_and_use_the_mean(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for k, z_mm in enumerate([0.0, 2.0, 4.2, 6.2, 8.0]):
        write_slice(tmp_path / f"IM{k}", raw_pattern()[k], (0.0, 0.0, z_mm))
    with caplog.at_level(logging.WARNING, logger="totalseg.io.dicom"):
        image = read_dicom_series(tmp_path)
    assert "vary from 1.8 to 2.2 mm; using their mean" in caplog.text
    assert image.spacing_mm[2] == pytest.approx(2.0)


# ---------------------------------------------------------------- errors


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match=r"does not exist: '.*nowhere'"):
        read_dicom_series(tmp_path / "nowhere")


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DicomError, match=r"Expected DICOM image slices in '.*', got no files"):
        read_dicom_series(tmp_path)


def test_folder_of_non_dicom_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(DicomError, match=r"got 2 not DICOM; pass a folder or .zip"):
        list_series(tmp_path)


def test_plain_file_is_neither_folder_nor_zip(tmp_path: Path) -> None:
    path = write_series(tmp_path)[0]
    with pytest.raises(DicomError, match="which is neither; pass the folder"):
        read_dicom_series(path)


def test_zip_with_path_traversal_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/IM1", b"x")
        zf.writestr("../../etc/IM2", b"x")
    with pytest.raises(DicomError, match=r"unsafe name '\.\./\.\./etc/IM2'.*path traversal"):
        read_dicom_series(archive)


def test_zip_member_with_bad_crc(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "series")
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for path in paths:
            zf.write(path, path.name)
    data = bytearray(archive.read_bytes())
    data[data.index(b"DICM") + 400] ^= 0xFF  # flip a byte inside the first member
    archive.write_bytes(bytes(data))
    with pytest.raises(DicomError, match=r"readable zip member, got Bad CRC-32.*'IM0000'"):
        read_dicom_series(archive)


def test_zip_member_too_large_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("IM1", bytes(5000))
    monkeypatch.setenv("TOTALSEG_ZIP_MAX_MEMBER_GB", str(4096 / 2**30))
    with pytest.raises(DicomError, match=r"'IM1' inflates to .* over the .* allowed for one"):
        list_series(archive)


def test_several_series_without_uid_lists_them(tmp_path: Path) -> None:
    write_series(tmp_path / "one", SeriesInstanceUID="1.2.3.1")
    write_series(tmp_path / "two", raw=raw_pattern(n=3), SeriesInstanceUID="1.2.3.2")
    with pytest.raises(
        DicomError,
        match=r"got 2: '1\.2\.3\.1' \(5 slices, CT.*'1\.2\.3\.2' \(3 slices.*pass --series UID",
    ):
        read_dicom_series(tmp_path)


def test_unknown_series_uid(tmp_path: Path) -> None:
    write_series(tmp_path, SeriesInstanceUID="1.2.3.1")
    with pytest.raises(DicomError, match=r"unknown series UID '9\.9'; choose one of: '1\.2\.3\.1'"):
        read_dicom_series(tmp_path, series_uid="9.9")


def test_missing_slice_names_its_neighbours(tmp_path: Path) -> None:
    paths = write_series(tmp_path, raw=raw_pattern(n=6))
    paths[3].unlink()
    with pytest.raises(
        DicomError,
        match=r"median step 2\.5 mm\), got a gap of 5 mm between 'IM0002' \(.*\) and 'IM0004'"
        r".*about 1 missing",
    ):
        read_dicom_series(tmp_path)


def test_duplicate_positions(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    (tmp_path / "copy").write_bytes(paths[2].read_bytes())
    with pytest.raises(DicomError, match=r"two at the same position: 'IM0002'.*'copy'"):
        read_dicom_series(tmp_path)


def test_mixed_orientations_name_the_slices(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    write_slice(
        paths[1], raw_pattern()[1], (-10.0, 20.0, 32.5), ImageOrientationPatient=list(CORONAL)
    )
    with pytest.raises(
        DicomError,
        match=r"same ImageOrientationPatient \(1, 0, 0, 0, 1, 0\).*1 differing: 'IM0001'",
    ):
        read_dicom_series(tmp_path)


def test_inconsistent_rows_and_columns(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    write_slice(paths[4], np.zeros((ROWS, COLS + 2), np.uint16), (-10.0, 20.0, 40.0))
    with pytest.raises(DicomError, match=r"same Rows, Columns \(8, 10\).*'IM0004' \(8, 12\)"):
        read_dicom_series(tmp_path)


def test_inconsistent_pixel_spacing(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    write_slice(paths[0], raw_pattern()[0], (-10.0, 20.0, 30.0), PixelSpacing=[0.7, 1.0])
    with pytest.raises(DicomError, match=r"same PixelSpacing \(0.7, 0.9\).*'IM0000' \(0.7, 1\)"):
        read_dicom_series(tmp_path)


def test_missing_pixel_spacing(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    ds = pydicom.dcmread(paths[2])
    del ds.PixelSpacing
    ds.save_as(paths[2])
    with pytest.raises(DicomError, match="PixelSpacing in every slice, got none in 'IM0002'"):
        read_dicom_series(tmp_path)


def test_position_with_wrong_value_count(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    write_slice(paths[1], raw_pattern()[1], (-10.0, 20.0))
    with pytest.raises(DicomError, match=r"3 values in ImagePositionPatient, got 2 \('IM0001'\)"):
        read_dicom_series(tmp_path)


def test_non_orthogonal_orientation(tmp_path: Path) -> None:
    write_series(tmp_path, iop=(1.0, 0.0, 0.0, 0.6, 0.8, 0.0))
    with pytest.raises(DicomError, match=r"two orthogonal direction cosines.*\(1, 0, 0, 0.6, 0.8"):
        read_dicom_series(tmp_path)


def test_colour_slices_are_refused(tmp_path: Path) -> None:
    rgb = np.zeros((N, ROWS, COLS, 3), np.uint16)
    write_series(
        tmp_path, raw=rgb, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0
    )
    with pytest.raises(DicomError, match=r"8x10 grey-scale slice, got .* \(8, 10, 3\)"):
        read_dicom_series(tmp_path)


def test_single_slice_is_not_a_volume(tmp_path: Path) -> None:
    write_series(tmp_path, raw=raw_pattern(n=1))
    with pytest.raises(DicomError, match="at least 2 slices, got 1 slice \\('IM0000'"):
        read_dicom_series(tmp_path)


def test_multi_frame_is_refused(tmp_path: Path) -> None:
    write_series(tmp_path, NumberOfFrames=2)
    with pytest.raises(DicomError, match=r"single-frame slices, got 2 frames.*dcm2niix"):
        read_dicom_series(tmp_path)


def test_mr_series_is_read_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_series(tmp_path, Modality="MR", RescaleSlope=1, RescaleIntercept=0)
    with caplog.at_level(logging.WARNING, logger="totalseg.io.dicom"):
        image = read_dicom_series(tmp_path)
    assert "Expected a CT series, got modality 'MR'" in caplog.text
    assert image.array.min() == 1000


def test_undecodable_pixel_data_names_the_file(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    ds = pydicom.dcmread(paths[3])
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 64])
    ds.save_as(paths[3], enforce_file_format=True)
    with pytest.raises(
        DicomError, match=r"got truncated or corrupt pixel data in 'IM0003' \(transfer"
    ):
        read_dicom_series(tmp_path)


def test_unparseable_dicom_header_names_the_file(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    data = paths[1].read_bytes()
    tag = b"\x02\x00\x10\x00UI"  # Transfer Syntax UID in the meta header: unknown VR
    assert tag in data
    paths[1].write_bytes(data.replace(tag, b"\x02\x00\x10\x00CQ", 1))
    with pytest.raises(
        DicomError, match=r"readable DICOM file, got NotImplementedError: .*\('IM0001' in"
    ):
        read_dicom_series(tmp_path)


def test_corrupt_element_names_the_file(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    data = paths[1].read_bytes()
    tag = b"\x08\x00\x60\x00CS"  # Modality: an unknown VR fails on first access
    assert tag in data
    paths[1].write_bytes(data.replace(tag, b"\x08\x00\x60\x00CQ", 1))
    with pytest.raises(DicomError, match=r"valid image tags, got NotImplementedError.*'IM0001'"):
        read_dicom_series(tmp_path)


def test_unreadable_file_of_another_series_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_series(tmp_path / "a")
    other = write_series(tmp_path / "b", SeriesInstanceUID="1.2.3.9")[0]
    other.write_bytes(other.read_bytes().replace(b"-10.0\\20.0", b"-10.x\\20.0", 1))
    for path in other.parent.iterdir():
        if path != other:
            path.unlink()
    with caplog.at_level(logging.WARNING, logger="totalseg.io.dicom"):
        assert [info.series_uid for info in list_series(tmp_path)] == [
            "1.2.826.0.1.3680043.8.498.1"
        ]
        assert read_dicom_series(tmp_path).shape == (COLS, ROWS, N)
    assert "Skipping an unreadable file (series '1.2.3.9')" in caplog.text
    assert "'b/IM0000'" in caplog.text
    with pytest.raises(DicomError, match=r"valid image tags, got ValueError.*'b/IM0000'"):
        read_dicom_series(tmp_path, series_uid="1.2.3.9")


def test_malformed_position_names_the_file(tmp_path: Path) -> None:
    paths = write_series(tmp_path)
    data = paths[2].read_bytes()
    assert b"-10.0\\20.0" in data
    paths[2].write_bytes(data.replace(b"-10.0\\20.0", b"-10.x\\20.0", 1))
    with pytest.raises(DicomError, match=r"valid image tags, got ValueError.*\('IM0002'\)"):
        read_dicom_series(tmp_path)


def test_missing_pydicom_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "totalseg\[dicom\]"'):
        read_dicom_series(tmp_path)


# ---------------------------------------------------------------- the shared real CT series


@pytest.fixture(scope="module")
def shared_ct():
    return read_dicom_series(SHARED_CT)


def _voxel_centres_match(a_affine, a_shape, b_affine, b_shape) -> bool:
    """Every corner and a few interior voxel centres of grid a are voxel centres of grid b."""
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    ijk = np.r_[corners * (np.array(a_shape) - 1), [[1, 2, 3], [100, 200, 7], [511, 3, 18]]]
    world = a_affine @ np.c_[ijk, np.ones(len(ijk))].T
    in_b = (np.linalg.inv(b_affine) @ world)[:3].T
    integral = np.allclose(in_b, np.round(in_b), atol=1e-3)
    inside = np.all((np.round(in_b) >= 0) & (np.round(in_b) < np.array(b_shape)))
    return bool(integral and inside)


@needs_shared
def test_shared_series_lands_on_the_reference_grid(shared_ct) -> None:
    seg = nib.load(SHARED_SEG)
    assert shared_ct.shape == seg.shape == (512, 512, 20)
    assert shared_ct.dtype == np.int16
    assert shared_ct.spacing_mm == pytest.approx((0.9765625, 0.9765625, 2.0))
    assert _voxel_centres_match(shared_ct.affine, shared_ct.shape, seg.affine, seg.shape)
    assert _voxel_centres_match(seg.affine, seg.shape, shared_ct.affine, shared_ct.shape)
    ours = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(shared_ct.array), shared_ct.affine))
    np.testing.assert_allclose(ours.affine, nib.as_closest_canonical(seg).affine, atol=1e-3)
    assert int(shared_ct.array.min()) == -1024  # HU = raw - 1024; air outside the body
    assert 1000 < int(shared_ct.array.max()) < 3000  # bone and contrast, no raw offset left


@needs_shared
def test_shared_series_matches_simpleitk(shared_ct) -> None:
    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(SHARED_CT)))
    reference = reader.Execute()
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(reference).transpose(2, 1, 0), shared_ct.array
    )
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = np.reshape(reference.GetDirection(), (3, 3)) * reference.GetSpacing()
    ijk_to_lps[:3, 3] = reference.GetOrigin()
    np.testing.assert_allclose(shared_ct.affine, LPS_TO_RAS @ ijk_to_lps, atol=1e-4)


@needs_shared
def test_shared_series_from_zip(tmp_path: Path, shared_ct) -> None:
    archive = tmp_path / "ct.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(SHARED_CT.iterdir()):
            zf.write(path, f"ct/{path.name}")
    assert list_series(archive) == [SeriesInfo("", "CT", 20, "CT Body 3.0")]
    image = read_dicom_series(archive)
    np.testing.assert_array_equal(image.array, shared_ct.array)
    np.testing.assert_allclose(image.affine, shared_ct.affine)
