"""Weights home: import (zip/dir, unsafe archives), pinned download from a loopback server."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import stat
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from totalseg.errors import ConfigError, DownloadError, ModelError, WeightsNotFoundError
from totalseg.models import release as release_mod
from totalseg.models.release import download_weights
from totalseg.models.tasks import weights_entry
from totalseg.models.weights import (
    find_model_folder,
    import_weights,
    list_installed,
    weights_dir,
    weights_home,
)

OFFICIAL_291 = (
    "Dataset291_TotalSegmentator_part1_organs_1559subj/"
    "nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres"
)


def _zip_dir(src_root: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for path in sorted(src_root.rglob("*")):
            zf.write(path, path.relative_to(src_root).as_posix())
    return dest


@pytest.fixture(scope="module")
def release_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A made-up release zip laid out like the official Dataset291 one (tiny random model)."""
    from totalseg.models.writer import random_model_folder

    root = tmp_path_factory.mktemp("release")
    random_model_folder(
        root / "tree" / OFFICIAL_291,
        n_classes=2,
        patch_size=(8, 8, 8),
        spacing_mm=1.5,
        features_per_stage=(2, 4),
        strides=((1, 1, 1), (2, 2, 2)),
        kernel_sizes=((3, 3, 3), (3, 3, 3)),
    )
    return _zip_dir(root / "tree", root / "Dataset291_TotalSegmentator_part1_organs_1559subj.zip")


def _leftovers(home: Path) -> list[str]:
    root = weights_dir(home)
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".")) if root.exists() else []


def test_home_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOTALSEG_HOME", str(tmp_path / "env"))
    assert weights_home() == tmp_path / "env"
    assert weights_dir(tmp_path / "x") == tmp_path / "x" / "weights"
    monkeypatch.delenv("TOTALSEG_HOME")
    assert weights_home().name == "totalseg"


def test_import_zip_then_find_and_list(home: Path, release_zip: Path) -> None:
    expected = (
        r"run `totalseg weights download total` or "
        r"`totalseg weights import Dataset291_TotalSegmentator_part1_organs_1559subj\.zip`"
    )
    with pytest.raises(WeightsNotFoundError, match=expected):
        find_model_folder(291)
    installed = import_weights(release_zip)
    assert installed == [home / "weights" / OFFICIAL_291]
    assert find_model_folder(291) == installed[0]
    (m,) = list_installed()
    assert (m.dataset_id, m.model, m.folds) == (291, OFFICIAL_291.split("/")[1], ("fold_0",))
    assert m.size_bytes > 0
    with pytest.raises(ModelError, match=r"already installed; pass --force"):
        import_weights(release_zip)
    assert import_weights(release_zip, overwrite=True) == installed
    assert _leftovers(home) == []


def test_import_directory(home: Path, release_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(release_zip) as zf:
        zf.extractall(tmp_path / "unzipped")
    assert import_weights(tmp_path / "unzipped") == [home / "weights" / OFFICIAL_291]
    assert import_weights(tmp_path / "unzipped" / OFFICIAL_291, overwrite=True)


def _bad_zip(tmp_path: Path, release_zip: Path, name: str, *, symlink: bool = False) -> Path:
    dest = tmp_path / "bad.zip"
    shutil.copy(release_zip, dest)
    with zipfile.ZipFile(dest, "a") as zf:
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd" if symlink else "x")
    return dest


@pytest.mark.parametrize(
    ("name", "symlink", "reason"),
    [
        ("../evil.txt", False, "path traversal"),
        ("Dataset291_x/../../evil.txt", False, "path traversal"),
        ("/tmp/evil.txt", False, "absolute path"),
        ("C:/evil.txt", False, "absolute path"),
        ("Dataset291_x/link", True, "symbolic link"),
    ],
)
def test_unsafe_archives_are_refused(
    home: Path, release_zip: Path, tmp_path: Path, name: str, symlink: bool, reason: str
) -> None:
    bad = _bad_zip(tmp_path, release_zip, name, symlink=symlink)
    with pytest.raises(ModelError, match=f"unsafe {reason}"):
        import_weights(bad)
    assert list_installed() == [] and _leftovers(home) == []
    assert not (tmp_path / "evil.txt").exists()


def test_incomplete_or_foreign_layouts(home: Path, tmp_path: Path, release_zip: Path) -> None:
    with zipfile.ZipFile(release_zip) as zf:
        zf.extractall(tmp_path / "t")
    shutil.rmtree(tmp_path / "t" / OFFICIAL_291 / "fold_0")
    with pytest.raises(ModelError, match=r"missing fold_\*/checkpoint_final\.pth"):
        import_weights(_zip_dir(tmp_path / "t", tmp_path / "incomplete.zip"))
    v1 = tmp_path / "v1" / "Task251_x" / "nnUNetTrainerV2__nnUNetPlansv2.1"
    (v1 / "fold_0").mkdir(parents=True)
    (v1 / "plans.pkl").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"Incomplete nnU-Net 1 model folder .*Task251_x"):
        import_weights(tmp_path / "v1")
    with pytest.raises(ModelError, match=r"Expected DatasetXXX_name/<trainer>.*or nnU-Net 1"):
        import_weights(
            tmp_path / "v1" / "Task251_x" / "nnUNetTrainerV2__nnUNetPlansv2.1" / "fold_0"
        )
    (tmp_path / "notzip.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ModelError, match=r"Expected a .zip archive or a folder"):
        import_weights(tmp_path / "notzip.zip")
    with pytest.raises(WeightsNotFoundError, match="Expected a weights zip or folder"):
        import_weights(tmp_path / "missing.zip")
    assert list_installed() == [] and _leftovers(home) == []


# ----- download from a loopback server -------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self) -> None:
        if self.path == "/missing.zip":
            self.send_error(404)
            return
        body = self.payload
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/truncated.zip":
            body = body[: len(body) // 2]  # then close: fewer bytes than announced
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server(release_zip: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv("TOTALSEG_OFFLINE")  # downloads on (from this loopback server only)
    handler = type("Handler", (_Handler,), {"payload": release_zip.read_bytes()})
    httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Recorder(release_mod.DownloadReporter):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int | None]] = []

    def archive_progress(self, done_bytes: int, total_bytes: int | None) -> None:
        self.seen.append((done_bytes, total_bytes))


def test_download_ok_with_explicit_hash(home: Path, server: str, release_zip: Path) -> None:
    recorder = _Recorder()
    paths = download_weights(
        "291", url=f"{server}/ok.zip", expected_sha256=_sha(release_zip), reporter=recorder
    )
    seen = recorder.seen
    assert paths == [home / "weights" / OFFICIAL_291]
    assert seen[-1] == (release_zip.stat().st_size, release_zip.stat().st_size)
    assert _leftovers(home) == []
    # installed: a second call does not download again (the URL would 404)
    assert download_weights("291", url=f"{server}/missing.zip", expected_sha256="0" * 64) == paths


def test_download_with_pinned_hash(
    home: Path, server: str, release_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = replace(weights_entry(291), url=f"{server}/ok.zip", sha256=_sha(release_zip))
    monkeypatch.setattr(release_mod, "weights_entry", lambda i: pinned)
    assert download_weights("291") == [home / "weights" / OFFICIAL_291]


@pytest.mark.parametrize(
    ("path", "sha", "message"),
    [
        ("/ok.zip", "a" * 64, "sha256 mismatch .* nothing was installed"),
        ("/truncated.zip", None, r"was truncated: expected \d+ bytes, got \d+"),
        ("/missing.zip", None, r"failed \(HTTP 404\); nothing was installed"),
    ],
)
def test_download_failures_leave_nothing(
    home: Path, server: str, release_zip: Path, path: str, sha: str | None, message: str
) -> None:
    with pytest.raises(DownloadError, match=message):
        download_weights("291", url=server + path, expected_sha256=sha or _sha(release_zip))
    assert list_installed() == [] and _leftovers(home) == []


def test_download_refusals(home: Path, server: str) -> None:
    with pytest.raises(
        ConfigError, match=r"one archive for a bare --sha256, but task 'total' has 5"
    ):
        download_weights("total", expected_sha256="a" * 64)
    with pytest.raises(ConfigError, match=r"--url applies to one archive"):
        download_weights("total", url=f"{server}/ok.zip")
    with pytest.raises(ConfigError, match="Expected a sha256 of 64 hex digits"):
        download_weights("291", expected_sha256="xyz")
    with pytest.raises(ConfigError, match=r"Expected an http\(s\) URL"):
        download_weights("291", url="file:///etc/passwd", expected_sha256="a" * 64)
    with pytest.raises(DownloadError, match="failed"):
        download_weights(
            "291", url="http://127.0.0.1:9/x.zip", expected_sha256="a" * 64, timeout_s=2
        )
    assert list_installed() == [] and _leftovers(home) == []
