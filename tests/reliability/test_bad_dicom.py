"""Bad DICOM inputs through `totalseg convert` and `segment`: broken slices, odd geometry, and
hostile or broken zip archives. Each is refused in one line naming the file, nothing written."""

from __future__ import annotations

import struct
import zipfile

import pytest
from tests.reliability.corpus import write_dicom_series

pydicom = pytest.importorskip("pydicom")


def _set(path, **tags):
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


def test_nan_position_is_refused_naming_the_slice(tmp_path, refused):
    paths = write_dicom_series(tmp_path / "s")
    _set(paths[3], ImagePositionPatient=[0.0, 0.0, float("nan")])
    refused("convert", tmp_path / "s", tmp_path / "ct.nii.gz", match="'IM0003.dcm'")


def test_truncated_pixel_data_is_one_line_naming_the_file(tmp_path, refused):
    paths = write_dicom_series(tmp_path / "s")
    paths[2].write_bytes(paths[2].read_bytes()[:-100])
    result = refused("convert", tmp_path / "s", tmp_path / "ct.nii.gz", match="IM0002.dcm")
    assert "truncated or corrupt" in result.err


def test_corrupt_file_in_a_folder_is_named(tmp_path, refused):
    paths = write_dicom_series(tmp_path / "s")
    paths[4].write_bytes(b"\x00garbage" * 40)
    result = refused("convert", tmp_path / "s", tmp_path / "ct.nii.gz", match="'IM0004.dcm'")
    assert "gap" in result.err


def test_empty_extra_file_is_ignored(tmp_path, cli):
    write_dicom_series(tmp_path / "s")
    (tmp_path / "s" / "empty").write_bytes(b"")
    result = cli("convert", tmp_path / "s", tmp_path / "ct.nii.gz")
    assert result.rc == 0 and result.err_lines == [], result


GEOMETRY = {
    "duplicate position": ({"ImagePositionPatient": [0.0, 0.0, 0.0]}, "same position"),
    "different Rows": ({"Rows": 8}, "Rows, Columns"),
    "tilted orientation": ({"ImageOrientationPatient": [1, 0, 0, 0, 0.8, 0.6]}, "Orientation"),
    "no PixelSpacing": ({"PixelSpacing": None}, "PixelSpacing"),
    "multi-frame": ({"NumberOfFrames": 2}, "single-frame"),
}


@pytest.mark.parametrize("kind", sorted(GEOMETRY))
def test_inconsistent_slices(kind, tmp_path, refused):
    tags, match = GEOMETRY[kind]
    paths = write_dicom_series(tmp_path / "s")
    ds = pydicom.dcmread(paths[1])
    for keyword, value in tags.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(paths[1], enforce_file_format=True)
    refused("convert", tmp_path / "s", tmp_path / "ct.nii.gz", match=match)


def test_single_slice_and_two_series(tmp_path, refused):
    write_dicom_series(tmp_path / "one", n=1)
    refused("convert", tmp_path / "one", tmp_path / "ct.nii.gz", match="at least 2 slices")
    write_dicom_series(tmp_path / "two" / "a")
    write_dicom_series(tmp_path / "two" / "b", SeriesInstanceUID="1.2.3.4")
    refused("convert", tmp_path / "two", tmp_path / "ct.nii.gz", match="--series")


def _declare_size(archive, member: str, size: int) -> None:
    """Rewrite the uncompressed size the central directory declares for `member`."""
    data = bytearray(archive.read_bytes())
    at = data.index(b"PK\x01\x02", 0)
    while at >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        name = bytes(data[at + 46 : at + 46 + name_len]).decode()
        if name == member:
            struct.pack_into("<I", data, at + 24, size)
            break
        at = data.find(b"PK\x01\x02", at + 1)
    archive.write_bytes(bytes(data))


def test_zip_member_of_1_gib_is_refused_from_its_size(tmp_path, refused):
    paths = write_dicom_series(tmp_path / "s")
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in paths:
            zf.write(path, path.name)
    _declare_size(archive, "IM0000.dcm", 2**30)
    result = refused("convert", archive, tmp_path / "ct.nii.gz", match="'IM0000.dcm' inflates")
    assert "TOTALSEG_ZIP_MAX_MEMBER_GB" in result.err


def test_zip_with_path_traversal_and_fake_zip(tmp_path, refused):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../IM1", b"x")
    refused("convert", archive, tmp_path / "ct.nii.gz", match="path traversal")
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK\x03\x04 not really a zip" * 10)
    refused("convert", fake, tmp_path / "ct.nii.gz", match="fake.zip")


def test_zip_bomb_of_dicom_is_refused(tmp_path, refused):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("IM0000.dcm", bytes(200 << 20))
    refused("convert", archive, tmp_path / "ct.nii.gz", match="zip bomb")


def test_dicom_series_segments_on_its_grid(tmp_path, cli, segment_args):
    write_dicom_series(tmp_path / "s")
    result = cli(*segment_args(tmp_path / "s", tmp_path / "out"))
    assert result.rc == 0 and result.err_lines == [], result
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["liver.nii.gz",
                                                                    "spleen.nii.gz"]  # fmt: skip
