"""Hostile or broken weights archives (`totalseg weights import`) and model folders
(`segment --model-dir`): refused in one line, nothing installed, nothing extracted."""

from __future__ import annotations

import pickle
import shutil
import stat
import zipfile

import pytest
import torch
from tests.reliability.corpus import TINY_ARCH

MODEL = "Dataset291_TotalSegmentator_part1_organs_1559subj/nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres"  # noqa: E501


@pytest.fixture(scope="module")
def release_tree(tmp_path_factory):
    from totalseg.models.writer import random_model_folder

    root = tmp_path_factory.mktemp("release")
    random_model_folder(root / MODEL, n_classes=2, patch_size=(8, 8, 8), spacing_mm=1.5,
                        **TINY_ARCH)  # fmt: skip
    return root


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "weights").mkdir(parents=True)
    monkeypatch.setenv("TOTALSEG_HOME", str(home))
    return home


def _zip(release_tree, dest, *extra: tuple[zipfile.ZipInfo | str, bytes]):
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(release_tree.rglob("*")):
            zf.write(path, path.relative_to(release_tree).as_posix())
        for info, data in extra:
            zf.writestr(info, data)
    return dest


def _symlink(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


HOSTILE = {
    "zip bomb (a member inflating 1000-fold)": (
        (f"{MODEL}/bomb.bin", bytes(300 << 20)), "zip bomb"),
    "path traversal": (("../../evil.txt", b"x"), "path traversal"),
    "absolute member": (("/tmp/evil.txt", b"x"), "absolute path"),
    "symbolic link": ((_symlink(f"{MODEL}/link"), b"/etc/passwd"), "symbolic link"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_weights_archives(kind, home, release_tree, tmp_path, refused):
    extra, match = HOSTILE[kind]
    archive = _zip(release_tree, tmp_path / "w.zip", extra)
    refused("weights", "import", archive, match=match)


def test_archive_limits_are_explicit_and_can_be_raised(home, release_tree, tmp_path, refused,
                                                        cli, monkeypatch):  # fmt: skip
    archive = _zip(release_tree, tmp_path / "w.zip")
    monkeypatch.setenv("TOTALSEG_ZIP_MAX_TOTAL_GB", "0.00001")
    refused("weights", "import", archive, match="TOTALSEG_ZIP_MAX_TOTAL_GB")
    monkeypatch.setenv("TOTALSEG_ZIP_MAX_TOTAL_GB", "nope")
    refused("weights", "import", archive, match="positive number")
    monkeypatch.delenv("TOTALSEG_ZIP_MAX_TOTAL_GB")
    assert cli("weights", "import", archive).rc == 0


def test_broken_weights_archives(home, release_tree, tmp_path, refused):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip at all")
    refused("weights", "import", fake, match="fake.zip")
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    refused("weights", "import", empty, match="DatasetXXX")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(_zip(release_tree, tmp_path / "whole.zip").read_bytes()[:3000])
    refused("weights", "import", cut, match="cut.zip")


def _model_copy(model_dir, tmp_path):
    dest = tmp_path / "model"
    shutil.copytree(model_dir, dest)
    return dest


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


BROKEN_MODELS = {
    "no plans.json": (lambda m: (m / "plans.json").unlink(), "plans.json"),
    "plans.json not JSON": (lambda m: (m / "plans.json").write_text("{"), "plans.json"),
    "no checkpoint": (lambda m: shutil.rmtree(m / "fold_0"), "fold"),
    "garbage checkpoint": (
        lambda m: (m / "fold_0" / "checkpoint_final.pth").write_bytes(b"garbage" * 100),
        "checkpoint"),
    "hostile pickle checkpoint": (
        lambda m: torch.save({"x": _Evil()}, m / "fold_0" / "checkpoint_final.pth"),
        "forbidden global"),
    "pickle instead of a checkpoint": (
        lambda m: (m / "fold_0" / "checkpoint_final.pth").write_bytes(pickle.dumps([1, 2])),
        "checkpoint"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(BROKEN_MODELS))
def test_broken_model_folders(kind, model_dir, tmp_path, ct_file, refused):
    damage, match = BROKEN_MODELS[kind]
    model = _model_copy(model_dir, tmp_path)
    damage(model)
    refused("segment", "-i", ct_file, "-o", tmp_path / "out", "--model-dir", model,
            "--device", "cpu", match=match)  # fmt: skip


def test_empty_model_folder(tmp_path, ct_file, refused):
    (tmp_path / "model").mkdir()
    refused("segment", "-i", ct_file, "-o", tmp_path / "out", "--model-dir", tmp_path / "model",
            "--device", "cpu", match="model")  # fmt: skip
