"""`totalseg view`: error policy, the printed URL, the browser, the warning, Ctrl-C, no torch."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from totalseg.cli.app import main
from totalseg.viewer import ViewerServer


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """serve_forever returns at once as if Ctrl-C was pressed; webbrowser.open is recorded."""
    opened: list[str] = []

    def interrupted(self: ViewerServer, poll_interval: float = 0.5) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ViewerServer, "serve_forever", interrupted)
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    return opened


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: Expected ")
    return err[0]


def test_bad_inputs_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], study_folder: Path
) -> None:
    assert main(["view", str(tmp_path / "missing.nii.gz"), "--no-browser"]) == 1
    assert "does not exist" in _one_error_line(capsys)
    assert main(["view", str(tmp_path), "--no-browser"]) == 1  # an empty folder
    assert "Expected a study folder" in _one_error_line(capsys)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 2), np.int16), np.eye(4)), tmp_path / "4d.nii.gz")
    assert main(["view", str(tmp_path / "4d.nii.gz"), "--no-browser"]) == 1
    assert "3D volume" in _one_error_line(capsys)
    assert main(["view", str(study_folder), str(tmp_path / "4d.nii.gz"), "--no-browser"]) == 1
    assert "no SEG argument" in _one_error_line(capsys)
    assert main(["view", str(study_folder), "--report", str(tmp_path), "--no-browser"]) == 1
    assert "report folder" in _one_error_line(capsys)


def test_a_port_in_use_is_a_user_error(
    phantom_case: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["view", str(phantom_case.ct), "--port", str(port), "--no-browser"]
        assert main(args) == 1
    assert "choose another --port" in _one_error_line(capsys)


def test_prints_the_url_and_opens_the_browser(
    phantom_case: Any, capsys: pytest.CaptureFixture[str], no_serving: list[str]
) -> None:
    assert main(["view", str(phantom_case.ct), str(phantom_case.seg)]) == 0
    out, err = capsys.readouterr()
    url = out.strip()
    assert url.startswith("http://127.0.0.1:") and no_serving == [url]
    assert "Warning" not in err and err.strip().endswith("Stopped.")


def test_a_non_loopback_host_warns(
    phantom_case: Any, capsys: pytest.CaptureFixture[str], no_serving: list[str]
) -> None:
    assert main(["view", str(phantom_case.ct), "--host", "0.0.0.0", "--no-browser"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("http://0.0.0.0:") and no_serving == []
    warning = [line for line in err.splitlines() if line.startswith("Warning:")]
    assert len(warning) == 1 and "reachable from other machines" in warning[0]


def test_view_does_not_import_torch(phantom_case: Any) -> None:
    code = (
        "import sys\n"
        "from totalseg.viewer import ViewerServer\n"
        "def stop(self, poll_interval=0.5): raise KeyboardInterrupt\n"
        "ViewerServer.serve_forever = stop\n"
        "from totalseg.cli.app import main\n"
        f"args = ['view', {str(phantom_case.ct)!r}, {str(phantom_case.seg)!r}, '--no-browser']\n"
        "rc = main(args)\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 False"


def test_serves_until_ctrl_c(phantom_case: Any) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from totalseg.cli import run; run()",
            "view",
            str(phantom_case.ct),
            str(phantom_case.seg),
            "--no-browser",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/cases", timeout=30) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(url.rsplit("/", 2)[0] + "/api/cases", timeout=30)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert err.strip().splitlines()[-1] == "Stopped."
