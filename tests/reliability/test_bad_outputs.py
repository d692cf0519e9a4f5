"""Output locations that cannot or must not be written: refused in one line naming the path,
with nothing left behind and the inputs untouched; and what a killed run leaves behind."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tests.reliability.corpus import ct_array, save_nifti


def test_ml_output_onto_the_input_is_refused(tmp_path, ct_file, refused, segment_args):
    refused(*segment_args(ct_file, ct_file, "--ml"), match="would replace the input")


def test_ml_output_onto_a_hard_link_of_the_input(tmp_path, ct_file, refused, segment_args):
    link = tmp_path / "link.nii.gz"
    os.link(ct_file, link)
    refused(*segment_args(ct_file, link, "--ml"), match="would replace the input")


def test_mask_folder_holding_the_input_as_a_mask_name(tmp_path, refused, segment_args):
    (tmp_path / "out").mkdir()
    ct = save_nifti(tmp_path / "out" / "liver.nii.gz", ct_array())
    refused(*segment_args(ct, tmp_path / "out"), match="would replace the input")


def test_output_parent_is_a_file(tmp_path, ct_file, refused, segment_args):
    (tmp_path / "file").write_text("x")
    refused(*segment_args(ct_file, tmp_path / "file" / "seg.nii.gz", "--ml"), match="'")
    refused(*segment_args(ct_file, tmp_path / "file" / "masks"), match="a file is in the way")


def test_mask_folder_is_an_existing_file(tmp_path, ct_file, refused, segment_args):
    (tmp_path / "masks").write_text("x")
    refused(*segment_args(ct_file, tmp_path / "masks"), match="a file is in the way")


def test_ml_output_is_an_existing_folder(tmp_path, ct_file, refused, segment_args):
    (tmp_path / "seg.nii.gz").mkdir()
    refused(*segment_args(ct_file, tmp_path / "seg.nii.gz", "--ml"), match="existing folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path, ct_file, refused, segment_args):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        refused(*segment_args(ct_file, folder / "masks"), match="permission denied")
    finally:
        folder.chmod(stat.S_IRWXU)


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (errno.ENOSPC, "no space left"),
        pytest.param(errno.EROFS, "read-only", marks=pytest.mark.slow),
        pytest.param(errno.EACCES, "permission", marks=pytest.mark.slow),
    ],
)
def test_os_errors_while_writing_masks(code, cause, tmp_path, ct_file, refused, segment_args,
                                       monkeypatch):  # fmt: skip
    """A write that fails half-way (full disk, ...): one line, no temp folder left."""
    real_save = nib.save

    def failing_save(img, path, *args, **kwargs):
        if str(path).endswith("spleen.nii.gz") or ".seg.nii.gz.tmp-" in str(path):
            Path(path).write_bytes(b"partial")
            raise OSError(code, os.strerror(code), str(path))
        return real_save(img, path, *args, **kwargs)

    monkeypatch.setattr(nib, "save", failing_save)
    refused(*segment_args(ct_file, tmp_path / "masks"), match=cause)
    refused(*segment_args(ct_file, tmp_path / "seg.nii.gz", "--ml"), match="Cannot write")


def test_outputs_get_the_usual_mode(tmp_path, ct_file, cli, segment_args):
    old = os.umask(0o022)
    try:
        assert cli(*segment_args(ct_file, tmp_path / "masks")).rc == 0
        assert cli(*segment_args(ct_file, tmp_path / "seg.nii.gz", "--ml")).rc == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "seg.nii.gz").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "masks" / "liver.nii.gz").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "masks").stat().st_mode) == 0o755


def test_stale_temp_folder_of_a_killed_run_is_cleaned(tmp_path, ct_file, accepted, model_dir):
    dead = 2**22 + 12345  # above the usual pid_max: no such process
    stale = tmp_path / f".masks.tmp-{dead}-abcd"
    stale.mkdir()
    (stale / "liver.nii.gz").write_bytes(b"half")
    accepted(ct_file, tmp_path / "masks", model=model_dir)
    assert not stale.exists()


def test_rerun_replaces_the_masks_and_keeps_other_files(tmp_path, ct_file, accepted, model_dir):
    out = tmp_path / "masks"
    accepted(ct_file, out, model=model_dir)
    accepted(ct_file, out, model=model_dir)  # a folder of only our masks: swapped whole
    (out / "notes.txt").write_text("mine")
    accepted(ct_file, out, model=model_dir)
    assert (out / "notes.txt").read_text() == "mine"


def test_evaluate_out_is_an_existing_file(tmp_path, refused):
    labels = (ct_array() > 500).astype(np.uint8)
    for name in ("pred", "ref"):
        (tmp_path / name).mkdir()
        save_nifti(tmp_path / name / "case.nii.gz", labels)
    (tmp_path / "out").write_text("x")
    refused("evaluate", "--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--out",
            tmp_path / "out", "--csv-only", match="a file is in the way")  # fmt: skip


def test_stats_out_onto_the_ct_and_convert_onto_its_source(tmp_path, ct_file, refused):
    seg = save_nifti(tmp_path / "seg.nii.gz", (ct_array() > 500).astype(np.uint8))
    refused("stats", ct_file, seg, "--out", seg, match="would replace the input")
    refused("convert", ct_file, ct_file, match="would replace the input")


def test_bad_option_values(tmp_path, ct_file, cli, refused, segment_args):
    usage = cli(*segment_args(ct_file, tmp_path / "o", "--tile-step", "nope"))
    assert usage.rc == 2 and "Traceback" not in usage.err  # Click's usage block, then one error
    assert usage.err_lines[-1].startswith("Error: Invalid value for '--tile-step'")
    refused(*segment_args(ct_file, tmp_path / "o", "--tile-step", "7"), match="tile step")
