"""Getting the official weights: every archive of a task from a loopback release server
(HTTP and HTTPS), the sha256 lock (trust on first use, pins, hash files), the automatic download
on the first `segment`, and TotalSegmentator installs found in a fake home."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import ssl
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import nibabel as nib
import numpy as np
import pytest

from totalseg.cli.app import main
from totalseg.errors import DownloadError, WeightsNotFoundError
from totalseg.models import release as release_mod
from totalseg.models.lock import LOCK_NAME, parse_pins, read_hash_file, read_lock
from totalseg.models.release import download_weights, ensure_model_folder
from totalseg.models.tasks import get_task, weights_entry
from totalseg.models.weights import (
    find_model_folder,
    list_available,
    resolve_model_dir,
)

TINY = {
    "patch_size": (8, 8, 8),
    "features_per_stage": (2, 4),
    "strides": ((1, 1, 1), (2, 2, 2)),
    "kernel_sizes": ((3, 3, 3), (3, 3, 3)),
}


def _labels(dataset_id: int) -> list[str]:
    from totalseg.anatomy import class_map, part_maps

    parts = part_maps("v2")
    return list((parts[dataset_id] if dataset_id in parts else class_map("v2")).values())


def _official_tree(root: Path, dataset_id: int, seed: int = 0) -> Path:
    """A tiny random model laid out like the official archive of `dataset_id`."""
    from totalseg.models.writer import random_model_folder

    entry = weights_entry(dataset_id)
    names = _labels(dataset_id)
    random_model_folder(
        root / entry.folder / entry.model, n_classes=len(names), label_names=names,
        spacing_mm=get_task("total-fastest").spacing_mm, seed=seed, trainer_name=entry.trainer,
        **TINY,
    )  # fmt: skip
    return root


def _zip(tree: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, path.relative_to(tree).as_posix())
    return dest


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Release zips of the five `total` parts and of 298 (the `total-fastest` model)."""
    root = tmp_path_factory.mktemp("releases")
    out = {}
    for dataset_id in (291, 292, 293, 294, 295, 298):
        tree = _official_tree(root / f"t{dataset_id}", dataset_id, seed=dataset_id)
        name = f"{weights_entry(dataset_id).folder}.zip"
        out[name] = _zip(tree, root / name).read_bytes()
    return out


class _Release(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    served: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        body = self.files.get(name)
        if body is None:
            self.send_error(404)
            return
        self.served.append(name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(files: dict[str, bytes], context: ssl.SSLContext | None = None) -> Any:
    handler = type("Release", (_Release,), {"files": dict(files), "served": []})
    httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, handler


@pytest.fixture
def release(
    archives: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, type[_Release]]]:
    """The official URLs pointed at a loopback server (same archive names); downloads on."""
    httpd, handler = _serve(archives)
    base = f"http://127.0.0.1:{httpd.server_address[1]}/releases/download/v2.0.0-weights"
    real = weights_entry
    monkeypatch.setattr(
        release_mod, "weights_entry", lambda i: replace(real(i), url=f"{base}/{real(i).folder}.zip")
    )
    monkeypatch.delenv("TOTALSEG_OFFLINE")
    try:
        yield base, handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_every_archive_of_a_task_trust_on_first_use(
    home: Path, release: tuple[str, type[_Release]], archives: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _, handler = release
    assert main(["weights", "download", "total"]) == 0
    captured = capsys.readouterr()
    names = [f"{weights_entry(i).folder}.zip" for i in get_task("total").datasets]
    assert handler.served == names  # all five, no hash asked for
    for name in names:  # each hash printed in sha256sum format, so it can be pinned elsewhere
        assert f"{_sha(archives[name])}  {name}  (trusted on first use" in captured.err
    assert captured.out.count("installed: ") == 5
    lock = read_lock(home / "weights")
    assert {n: e.sha256 for n, e in lock.items()} == {n: _sha(archives[n]) for n in names}
    assert all(e.size_bytes == len(archives[e.name]) for e in lock.values())
    # installed: nothing is fetched again
    assert main(["weights", "download", "total"]) == 0
    assert handler.served == names
    assert [p.name for p in (home / "weights").iterdir() if p.name.startswith(".")] == []


def test_a_changed_archive_is_refused_by_the_lock(
    home: Path, release: tuple[str, type[_Release]], archives: dict[str, bytes]
) -> None:
    _, handler = release
    name = f"{weights_entry(298).folder}.zip"
    (first,) = download_weights("298")
    handler.files[name] = archives[f"{weights_entry(291).folder}.zip"]  # re-published, other hash
    with pytest.raises(DownloadError, match=r"sha256 mismatch .* nothing was installed"):
        download_weights("298", overwrite=True)
    assert find_model_folder(298) == first and (first / "plans.json").is_file()
    lock_text = (home / "weights" / LOCK_NAME).read_text()
    assert _sha(archives[name]) in lock_text


def test_user_pins_win_and_disagreeing_with_the_lock_is_refused(
    home: Path, release: tuple[str, type[_Release]], archives: dict[str, bytes], tmp_path: Path
) -> None:
    name = f"{weights_entry(298).folder}.zip"
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_weights("total-fastest", pins={name: "b" * 64})
    hashes = tmp_path / "SHA256SUMS"
    hashes.write_text(f"# pinned\n{_sha(archives[name])}  downloads/{name}\n")
    assert main(["weights", "download", "total-fastest", "--hashes", str(hashes)]) == 0
    assert read_hash_file(hashes) == {name: _sha(archives[name])}
    # the lock file itself works as a hash file on another machine
    assert read_hash_file(home / "weights" / LOCK_NAME) == {name: _sha(archives[name])}
    other = archives[f"{weights_entry(291).folder}.zip"]
    release[1].files[name] = other  # re-published: the user pins the new file, the lock differs
    with pytest.raises(DownloadError, match=r"recorded .* when it was first downloaded"):
        download_weights("298", overwrite=True, pins={name: _sha(other)})


def test_pin_parsing() -> None:
    archives = {"291": "A.zip", "292": "B.zip"}
    values = ["291=" + "A" * 64, "B.zip=" + "b" * 64]
    pins = parse_pins(values, hash_file=None, archives=archives)
    assert pins == {"A.zip": "a" * 64, "B.zip": "b" * 64}
    assert parse_pins(["c" * 64], hash_file=None, archives={"298": "C.zip"}) == {"C.zip": "c" * 64}


def test_first_segment_downloads_missing_weights_unless_told_not_to(
    home: Path, release: tuple[str, type[_Release]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    ct = tmp_path / "ct.nii.gz"
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.normal(0, 200, (12, 10, 9)).astype(np.int16), np.eye(4) * 6), ct)
    args = ["segment", "-i", str(ct), "-o", str(tmp_path / "seg.nii.gz"), "--ml",
            "--task", "total-fastest", "--device", "cpu"]  # fmt: skip
    assert main([*args, "--no-download"]) == 1
    assert "Automatic download is off (--no-download)" in capsys.readouterr().err
    monkeypatch.setenv("TOTALSEG_OFFLINE", "1")
    assert main(args) == 1
    assert "Automatic download is off (TOTALSEG_OFFLINE is set)" in capsys.readouterr().err
    monkeypatch.delenv("TOTALSEG_OFFLINE")
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "trusted on first use" in captured.err and "wrote " in captured.out
    assert release[1].served == [f"{weights_entry(298).folder}.zip"]
    assert (tmp_path / "seg.nii.gz").is_file()


def test_https_download_verifies_the_server_certificate(
    home: Path, archives: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a loopback certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
         "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    name = f"{weights_entry(298).folder}.zip"
    httpd, _ = _serve(archives, context)
    url = f"https://127.0.0.1:{httpd.server_address[1]}/{name}"
    monkeypatch.delenv("TOTALSEG_OFFLINE")
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))  # untrusted: refused
        with pytest.raises(DownloadError, match="CERTIFICATE_VERIFY_FAILED"):
            download_weights("298", url=url)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        assert download_weights("298", url=url) == [find_model_folder(298)]
    finally:
        httpd.shutdown()
        httpd.server_close()


# ----- TotalSegmentator installs --------------------------------------------------------------


@pytest.fixture
def ts_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake user home with TotalSegmentator's weights for 298 in ~/.totalsegmentator."""
    user = tmp_path / "user"
    results = user / ".totalsegmentator" / "nnunet" / "results"
    _official_tree(results, 298)
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH")
    return results


def test_a_totalsegmentator_install_is_listed_and_used_in_place(
    home: Path, ts_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = ts_home / weights_entry(298).relpath
    before = sorted((p, p.stat().st_mtime_ns) for p in ts_home.rglob("*"))
    assert find_model_folder(298) == folder
    assert ensure_model_folder(298) == folder  # no download (downloads are off in tests)
    assert main(["weights", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totalsegmentator_dir"] == str(ts_home)
    assert [(m["dataset_id"], m["source"]) for m in doc["models"]] == [
        (9000, "shipped"), (298, "TotalSegmentator"),
    ]  # fmt: skip
    assert main(["weights", "download", "total-fastest"]) == 0  # nothing to fetch
    assert "already available (no download)" in capsys.readouterr().out
    assert sorted((p, p.stat().st_mtime_ns) for p in ts_home.rglob("*")) == before  # read-only
    assert not (home / "weights").exists() or not any((home / "weights").iterdir())


def test_env_vars_select_the_install_like_the_reference_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from totalseg.models.external import totalsegmentator_weights_dir

    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert totalsegmentator_weights_dir() == tmp_path / ".totalsegmentator/nnunet/results"
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "ts"))
    assert totalsegmentator_weights_dir() == tmp_path / "ts/nnunet/results"
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "w"))
    assert totalsegmentator_weights_dir() == tmp_path / "w"
    monkeypatch.setenv("HOME", "/")
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH")
    monkeypatch.delenv("TOTALSEG_HOME_DIR")
    assert totalsegmentator_weights_dir() == Path("/tmp/.totalsegmentator/nnunet/results")


def test_import_link_and_layout_checks(
    home: Path, ts_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["weights", "import", str(ts_home), "--link"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    linked = home / "weights" / weights_entry(298).relpath
    assert line == f"linked {linked}" and linked.is_symlink()
    assert linked.resolve() == (ts_home / weights_entry(298).relpath).resolve()
    assert [m.source for m in list_available()] == ["shipped", "totalseg", "TotalSegmentator"]
    assert main(["weights", "import", str(ts_home), "--link", "--force"]) == 0
    assert (ts_home / weights_entry(298).relpath / "plans.json").is_file()  # target untouched
    (ts_home / weights_entry(298).relpath / "dataset.json").unlink()
    assert main(["weights", "import", str(ts_home), "--link", "--force"]) == 1
    assert "Expected DatasetXXX_name/<trainer>" in capsys.readouterr().err


def test_incomplete_install_is_skipped_with_the_usual_message(home: Path, ts_home: Path) -> None:
    shutil.rmtree(ts_home / weights_entry(298).relpath / "fold_0")
    with pytest.raises(WeightsNotFoundError, match=r"are not installed in .* nor in TotalSeg"):
        find_model_folder(298)


def test_model_dir_one_level_above_the_trainer_folder(tmp_path: Path) -> None:
    from totalseg.errors import ModelError

    tree = _official_tree(tmp_path / "t", 298)
    dataset = tree / weights_entry(298).folder
    assert resolve_model_dir(dataset) == dataset / weights_entry(298).model
    assert (
        resolve_model_dir(dataset / weights_entry(298).model) == dataset / weights_entry(298).model
    )
    shutil.copytree(dataset / weights_entry(298).model, dataset / "nnUNetTrainer__other__3d")
    with pytest.raises(ModelError, match=r"Expected one model folder .* inside"):
        resolve_model_dir(dataset)
