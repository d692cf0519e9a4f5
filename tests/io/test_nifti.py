from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from totalseg.errors import ImageFileError, InputError
from totalseg.image import Image, LabelMap
from totalseg.io import (
    read_image,
    read_label_map,
    read_mask_folder,
    write_image,
    write_label_map,
    write_mask_folder,
)
from totalseg.io.labeltable import label_table_xml, parse_label_table


def _save(tmp_path, array, affine=None, name="x.nii.gz"):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), path)
    return path


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int32, np.float32, np.float64])
def test_image_round_trip_keeps_values_dtype_affine(tmp_path, any_affine, dtype):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(23, 31, 17)) * 100).astype(dtype)
    path = write_image(Image(array, any_affine), tmp_path / "ct.nii.gz")
    back = read_image(path)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.affine, any_affine, atol=1e-5)


def test_write_preserves_source_header_codes_and_units(tmp_path):
    src = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.diag([3, 3, 3, 1.0]))
    src.header.set_qform(None, code=0)
    src.header.set_sform(np.diag([3, 3, 3, 1.0]), code=2)
    src.header.set_xyzt_units("mm", "sec")
    src.header["descrip"] = b"scanner X"
    src_path = tmp_path / "src.nii.gz"
    nib.save(src, src_path)
    out = write_image(read_image(src_path), tmp_path / "out.nii", header_from=src_path)
    hdr = nib.load(out).header
    assert int(hdr["sform_code"]) == 2 and int(hdr["qform_code"]) == 0
    assert hdr.get_xyzt_units() == ("mm", "sec")
    assert bytes(hdr["descrip"]).rstrip(b"\0") == b"scanner X"


def test_four_d_single_volume_is_accepted(tmp_path):
    path = _save(tmp_path, np.ones((4, 5, 6, 1), np.int16))
    assert read_image(path).shape == (4, 5, 6)


def test_four_d_several_volumes_names_the_shape(tmp_path):
    path = _save(tmp_path, np.ones((4, 5, 6, 2), np.int16))
    with pytest.raises(InputError, match=r"Expected a 3D volume, got shape \(4, 5, 6, 2\)"):
        read_image(path)


def test_five_d_is_an_error(tmp_path):
    path = _save(tmp_path, np.ones((4, 5, 6, 1, 2), np.int16))
    with pytest.raises(InputError, match=r"got shape \(4, 5, 6, 1, 2\) \(5D\)"):
        read_image(path)


def test_two_d_is_an_error(tmp_path):
    path = _save(tmp_path, np.ones((4, 5), np.int16))
    with pytest.raises(InputError, match=r"2D slice cannot be segmented"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageFileError, match="does not exist"):
        read_image(tmp_path / "nope.nii.gz")


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(b"this is not a nifti file at all" * 20)
    with pytest.raises(ImageFileError, match=r"could not be opened|truncated or corrupt"):
        read_image(path)


def test_truncated_gzip(tmp_path):
    good = _save(tmp_path, np.arange(40 * 40 * 40, dtype=np.int16).reshape(40, 40, 40))
    raw = good.read_bytes()
    bad = tmp_path / "trunc.nii.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageFileError, match=r"truncated or corrupt|could not be opened"):
        read_image(bad)


def test_truncated_uncompressed(tmp_path):
    good = _save(tmp_path, np.ones((20, 20, 20), np.int16), name="x.nii")
    bad = tmp_path / "trunc.nii"
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ImageFileError, match=r"truncated or corrupt|could not be opened"):
        read_image(bad)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ImageFileError, match="got a folder"):
        read_image(tmp_path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_image(Image(np.zeros((3, 4, 5), np.int16), np.eye(4)), tmp_path / "a.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_non_nifti_suffix(tmp_path):
    with pytest.raises(ImageFileError, match=r"ending in \.nii or \.nii\.gz"):
        write_image(Image(np.zeros((3, 4, 5), np.int16), np.eye(4)), tmp_path / "a.png")


def test_label_map_round_trip_with_label_table(tmp_path, any_affine):
    array = np.zeros((23, 31, 17), np.uint8)
    array[2:5, 3:9, 1:4] = 5
    array[10:12, 20:25, 8:10] = 90
    lm = LabelMap(array, any_affine, {5: "liver", 90: "brain"})
    path = write_label_map(lm, tmp_path / "seg.nii.gz")
    back = read_label_map(path)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back.array, array)
    assert dict(back.labels) == {5: "liver", 90: "brain"}


def test_label_table_is_byte_identical_to_reference(shared_data):
    ref = nib.load(shared_data / "example_seg_roi_subset.nii.gz")
    content = ref.header.extensions[0].get_content()
    assert label_table_xml({5: "liver", 90: "brain"}) == content


def test_reads_reference_label_table(shared_data):
    lm = read_label_map(shared_data / "example_seg.nii.gz")
    assert len(lm.labels) == 117
    assert lm.labels[5] == "liver" and lm.labels[117] == "costal_cartilages"


def test_float_label_map_with_integers_is_converted(tmp_path):
    path = _save(tmp_path, np.array([[[0.0, 1.0], [2.0, 104.0]]] * 2))
    lm = read_label_map(path)
    assert lm.dtype.kind in "iu" and lm.present_labels() == [1, 2, 104]


def test_float_label_map_with_fractions_is_an_error(tmp_path):
    path = _save(tmp_path, np.full((2, 2, 2), 0.5, np.float32))
    with pytest.raises(InputError, match="Expected integer labels"):
        read_label_map(path)


def test_malformed_label_table_is_an_error():
    with pytest.raises(InputError, match="unparsable XML"):
        parse_label_table(b"<LabelTable><Label Key='1'>oops</LabelTable>")


def test_non_label_extension_is_ignored():
    assert parse_label_table(b"some other extension") == {}


def test_mask_folder_round_trip(tmp_path, any_affine):
    array = np.zeros((23, 31, 17), np.uint8)
    array[1:4, 1:4, 1:4] = 1
    array[10:14, 10:20, 5:9] = 3
    names = {1: "spleen", 2: "kidney_right", 3: "kidney_left"}
    files = write_mask_folder(LabelMap(array, any_affine), tmp_path / "masks", labels=names)
    assert sorted(p.name for p in files) == sorted(f"{n}.nii.gz" for n in names.values())
    assert np.asarray(read_label_map(files[1]).array).sum() == 0  # empty class still written
    back = read_mask_folder(tmp_path / "masks", names)
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.affine, any_affine, atol=1e-5)


def test_mask_folder_empty_is_an_error(tmp_path):
    with pytest.raises(ImageFileError, match="found none of the 2 expected classes"):
        read_mask_folder(tmp_path, {1: "spleen", 2: "liver"})
