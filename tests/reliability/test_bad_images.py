"""Bad NIfTI inputs through `totalseg segment`: broken files, lying headers, odd dtypes and
geometry, and intensities that are not CT. Each is refused in one line with nothing left
behind, or accepted (with at most one warning line) with its output on the input grid."""

from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
import pytest
from tests.reliability.corpus import AFFINE, SHAPE, ct_array, save_nifti


def _huge_header(shape, *, nifti2: bool = False) -> bytes:
    header = nib.Nifti2Header() if nifti2 else nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header["vox_offset"] = header.single_vox_offset
    pad = int(header["vox_offset"]) - len(header.binaryblock)
    return header.binaryblock + b"\0" * pad + b"\0" * 1000


BROKEN_FILES = {
    "empty file": lambda p: p.write_bytes(b""),
    "garbage bytes": lambda p: p.write_bytes(np.random.default_rng(1).bytes(5000)),
    "gzip of garbage": lambda p: p.write_bytes(gzip.compress(b"not a nifti" * 50)),
    "header claims 32767^3 voxels": lambda p: p.write_bytes(
        gzip.compress(_huge_header((32767, 32767, 32767)))
    ),
    "NIfTI-2 header claims 100000^3 voxels": lambda p: p.write_bytes(
        gzip.compress(_huge_header((100000, 100000, 100000), nifti2=True))
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_FILES))
def test_broken_nifti_files(kind, tmp_path, refused, segment_args):
    path = tmp_path / "ct.nii.gz"
    BROKEN_FILES[kind](path)
    refused(*segment_args(path, tmp_path / "out"), match="ct.nii.gz")


def test_truncated_nifti(tmp_path, refused, segment_args, ct_file):
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(ct_file.read_bytes()[:400])
    refused(*segment_args(path, tmp_path / "out"), match="truncated")


def test_uncompressed_header_larger_than_its_file(tmp_path, refused, segment_args):
    path = tmp_path / "ct.nii"
    path.write_bytes(_huge_header((32767, 32767, 32767)))
    refused(*segment_args(path, tmp_path / "out"), match="voxels the header")


def test_voxel_limit_is_explicit_and_can_be_raised(
    tmp_path, refused, segment_args, ct_file, monkeypatch, accepted, model_dir
):
    monkeypatch.setenv("TOTALSEG_MAX_VOXELS", "1000")
    refused(*segment_args(ct_file, tmp_path / "out"), match="TOTALSEG_MAX_VOXELS")
    monkeypatch.setenv("TOTALSEG_MAX_VOXELS", str(10**6))
    accepted(ct_file, tmp_path / "out", model=model_dir)


SHAPES = {"2D": (24, 20), "4D, two volumes": (24, 20, 18, 2), "5D": (8, 8, 8, 1, 2)}


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_wrong_dimensionality(kind, tmp_path, refused, segment_args):
    path = save_nifti(tmp_path / "ct.nii.gz", np.zeros(SHAPES[kind], np.int16) - 1000)
    refused(*segment_args(path, tmp_path / "out"), match="Expected a 3D volume")


def test_4d_with_one_volume_is_accepted(tmp_path, accepted, model_dir):
    path = save_nifti(tmp_path / "ct.nii.gz", ct_array()[..., None])
    accepted(path, tmp_path / "out", model=model_dir, grid=(SHAPE, AFFINE))


def test_complex_voxels(tmp_path, refused, segment_args):
    path = save_nifti(tmp_path / "ct.nii.gz", ct_array().astype(np.complex64))
    refused(*segment_args(path, tmp_path / "out"), match="complex")


def test_rgb_voxels(tmp_path, refused, segment_args):
    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    path = save_nifti(tmp_path / "ct.nii.gz", rgb)
    refused(*segment_args(path, tmp_path / "out"), match="Expected")


@pytest.mark.parametrize("pixdim", [(0.0, 1.5, 2.0), (-1.5, 1.5, 2.0)])
def test_zero_or_negative_pixdim_one_warning(pixdim, tmp_path, accepted, model_dir):
    pixdims = np.array([1.0, *pixdim, 1.0, 1.0, 1.0, 1.0], dtype=np.float32)
    path = _raw_nifti(tmp_path / "ct.nii", ct_array(), sform_code=0, qform_code=1, pixdim=pixdims)
    loaded = nib.load(path)
    accepted(path, tmp_path / "out", model=model_dir, warning="pixdim",
             grid=(SHAPE, loaded.affine))  # fmt: skip


def _raw_nifti(path, array, **fields):
    """An uncompressed NIfTI whose header fields are set as given, unchecked by nibabel."""
    raw = nib.Nifti1Image(array, np.diag([1.5, 1.5, 2.0, 1.0]), dtype=array.dtype).to_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw), check=False)
    for key, value in fields.items():
        header[key] = value
    path.write_bytes(header.binaryblock + raw[348:])
    return path


def test_singular_affine(tmp_path, refused, segment_args):
    path = _raw_nifti(tmp_path / "ct.nii", ct_array(), srow_z=(0.0, 0.0, 0.0, 0.0), qform_code=0)
    refused(*segment_args(path, tmp_path / "out"), match="affine")


INTENSITIES = {
    "NaN voxels": (lambda: np.where(ct_array() > 500, np.nan, ct_array()).astype(np.float32),
                   "NaN"),
    "infinite voxels": (lambda: np.where(ct_array() > 500, np.inf, ct_array()).astype(np.float32),
                        "infinite"),
    "int64 around 1e18": (lambda: ct_array().astype(np.int64) * 10**15, "outside any CT range"),
    "constant 0 HU": (lambda: np.zeros(SHAPE, np.int16), "constant"),
    "constant -1000 HU": (lambda: np.full(SHAPE, -1000, np.int16), "constant"),
    "1x1x1 image": (lambda: np.full((1, 1, 1), 40, np.int16), "tiny"),
    "3x4x5 image": (lambda: ct_array((3, 4, 5)), "tiny"),
    "one slice": (lambda: ct_array((64, 64, 1)), "tiny"),
    "MR-like 0..1500, no air": (
        lambda: np.random.default_rng(0).uniform(0, 1500, SHAPE).astype(np.int16), "looks like MR"
    ),
    "raw CT without intercept": (lambda: (ct_array() + 1024).astype(np.uint16), "intercept"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(INTENSITIES))
def test_implausible_ct_is_refused(kind, tmp_path, refused, segment_args):
    make, match = INTENSITIES[kind]
    path = save_nifti(tmp_path / "ct.nii.gz", make())
    result = refused(*segment_args(path, tmp_path / "out"), match=match)
    assert "--force" in result.err


def test_overflowing_scale_slope_is_refused_in_one_line(tmp_path, refused, segment_args):
    ct = ct_array().astype(np.float32)
    path = _raw_nifti(tmp_path / "ct.nii", ct, scl_slope=1e38, scl_inter=0.0)
    refused(*segment_args(path, tmp_path / "out"), match="outside any CT range")


def test_force_segments_it_anyway_with_one_warning(tmp_path, accepted, model_dir):
    mr = np.random.default_rng(0).uniform(0, 1500, SHAPE).astype(np.int16)
    path = save_nifti(tmp_path / "mr.nii.gz", mr)
    accepted(path, tmp_path / "out", "--force", model=model_dir, warning="(--force)")


BORDERLINE = {
    "no air": (lambda: np.clip(ct_array(), -500, None), "no air"),
    "beyond 3071 HU": (lambda: np.where(ct_array() > 500, 6000, ct_array()), "beyond the CT"),
}


@pytest.mark.parametrize("kind", sorted(BORDERLINE))
def test_borderline_ct_warns_once_and_goes_on(kind, tmp_path, accepted, model_dir):
    make, warning = BORDERLINE[kind]
    path = save_nifti(tmp_path / "ct.nii.gz", make().astype(np.int16))
    accepted(path, tmp_path / "out", model=model_dir, warning=warning)


def test_padding_and_float_ct_are_fine(tmp_path, accepted, model_dir):
    ct = ct_array().astype(np.float32)
    ct[:2] = -3024.0  # out-of-field padding of some scanners
    path = save_nifti(tmp_path / "ct.nii.gz", ct)
    accepted(path, tmp_path / "out", model=model_dir)


def test_missing_input_and_folder_of_text(tmp_path, refused, segment_args):
    refused(*segment_args(tmp_path / "nope.nii.gz", tmp_path / "out"), match="does not exist")
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    refused(*segment_args(folder, tmp_path / "out"), match="not DICOM")


def test_stats_refuses_an_mr_like_ct(tmp_path, refused):
    mr = np.random.default_rng(0).uniform(0, 1500, SHAPE).astype(np.int16)
    ct = save_nifti(tmp_path / "mr.nii.gz", mr)
    seg = save_nifti(tmp_path / "seg.nii.gz", (ct_array() > 500).astype(np.uint8))
    refused("stats", ct, seg, "--out", tmp_path / "s.json", match="looks like MR")
