"""Fixtures of the bad-input corpus: a tiny random-init model folder, CT-like volumes written on
the fly, and the one assertion every refusal must pass (exit code, one stderr line, no
traceback, nothing left behind anywhere in the test's folder)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tests.reliability.corpus import TINY_ARCH, Outcome, ct_array, save_nifti, tree


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A two-class model (liver, spleen), 16^3 patch, 1.5 mm: fast on 2 CPU cores."""
    from totalseg.models.writer import random_model_folder

    return random_model_folder(
        tmp_path_factory.mktemp("model") / "m", n_classes=2, patch_size=(16, 16, 16),
        spacing_mm=1.5, label_names=["liver", "spleen"], **TINY_ARCH,
    )  # fmt: skip


@pytest.fixture
def ct_file(tmp_path) -> Path:
    return save_nifti(tmp_path / "ct.nii.gz", ct_array())


@pytest.fixture
def cli(capsys, tmp_path):
    """Run `totalseg ARGS` in this process; returns an Outcome."""
    from totalseg.cli.app import main

    def run(*args: object) -> Outcome:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Outcome(rc, captured.out, captured.err)

    return run


@pytest.fixture
def refused(cli, tmp_path):
    """Run the CLI and assert a clean refusal: exit 1 or 2, exactly one line on stderr naming
    what `match` says, no traceback, and not one file created or changed under tmp_path."""

    def check(*args: object, match: str, rc: tuple[int, ...] = (1,)) -> Outcome:
        before = tree(tmp_path)
        result = cli(*args)
        assert result.rc in rc, result
        assert len(result.err_lines) == 1, result.err
        assert "Traceback" not in result.err and "Internal error" not in result.err
        assert match.lower() in result.err.lower(), result.err
        assert tree(tmp_path) == before
        return result

    return check


@pytest.fixture
def accepted(cli, tmp_path):
    """Run `segment` on `source` into `out`; assert exit 0, at most `n_warnings` stderr
    lines (each containing `warning` when given), and masks on the input grid."""

    def check(source: Path, out: Path, *extra: object, model: Path, warning: str | None = None,
              grid: tuple[tuple[int, ...], np.ndarray] | None = None) -> Outcome:  # fmt: skip
        result = cli("segment", "-i", source, "-o", out, "--model-dir", model, "--device", "cpu",
                     *extra)  # fmt: skip
        assert result.rc == 0, result
        if warning is None:
            assert result.err_lines == [], result.err
        else:
            assert len(result.err_lines) == 1 and warning in result.err, result.err
        shape, affine = grid or (nib.load(source).shape[:3], nib.load(source).affine)
        for mask in ("liver", "spleen"):
            img = nib.load(out / f"{mask}.nii.gz")
            assert img.shape == tuple(shape)
            np.testing.assert_allclose(img.affine, affine, atol=1e-5)
        assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]
        return result

    return check


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Run from the test's folder, so a stray file written to the working folder is seen."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def segment_args(model_dir):
    def args(source: object, out: object, *extra: object) -> list[object]:
        return ["segment", "-i", source, "-o", out, "--model-dir", model_dir, "--device", "cpu",
                *extra]  # fmt: skip

    return args
