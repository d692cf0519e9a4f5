"""The viewer's HTTP server: token, read-only methods, path confinement, the case API."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import re
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from totalseg.stats import compute_statistics
from totalseg.viewer import is_loopback, open_case, open_study
from totalseg.viewer.server import static_dir


def request(
    server: Any, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A raw request: the path is sent exactly as given (no normalisation of '..')."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get(server: Any, rest: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    return request(server, f"/{server.token}/{rest}", **kwargs)


@pytest.fixture(scope="module")
def case_catalog(phantom_case: Any) -> Any:
    return open_case(phantom_case.ct, phantom_case.seg)


@pytest.fixture
def server(serve: Any, case_catalog: Any) -> Any:
    return serve(case_catalog)


def _decode(body: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(body))


@pytest.mark.parametrize(
    "path", ["/", "/index.html", "/static/viewer.js", "/api/cases", "/x/api/cases", "//api/cases"]
)
def test_requests_without_the_token_get_403(server: Any, path: str) -> None:
    status, _, body = request(server, path)
    assert status == 403 and b"forbidden" in body


def test_a_wrong_token_gets_403(server: Any) -> None:
    assert request(server, f"/{server.token[:-1]}x/api/cases")[0] == 403
    assert request(server, f"/{server.token}x/api/cases")[0] == 403


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"])
def test_only_get_and_head_are_served(server: Any, method: str) -> None:
    status, headers, _ = get(server, "api/cases", method=method)
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_head_sends_headers_only(server: Any) -> None:
    status, headers, body = get(server, "api/cases", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("static/../api/cases", 403),
        ("static/niivue/../../static/viewer.js", 403),
        ("static/%2e%2e/catalog.py", 403),
        ("static/..%2fcatalog.py", 403),
        ("static/%2fetc%2fpasswd", 403),
        ("static//etc/passwd", 403),
        ("static/./viewer.js", 403),
        ("static/viewer.js%00.png", 403),
        ("static/no_such_file.js", 404),
        ("static/", 403),
        ("report/report.html", 404),  # no report folder in a single-case catalog
        ("case/../api/cases", 404),
        ("nothing/here", 404),
    ],
)
def test_paths_outside_the_served_folders_are_refused(
    server: Any, rest: str, expected: int
) -> None:
    assert get(server, rest)[0] == expected


def test_symlinks_out_of_the_report_folder_are_refused(
    serve: Any, study_folder: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    (report / "figures").mkdir(parents=True)
    (report / "report.html").write_text("<html><head></head><body>report</body></html>")
    (report / "figures" / "a.png").write_bytes(b"\x89PNG fake")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (report / "leak.txt").symlink_to(secret)
    (report / "dir_leak").symlink_to(tmp_path, target_is_directory=True)
    (report / "inside.png").symlink_to(report / "figures" / "a.png")
    server = serve(open_study(study_folder, report=report))
    assert get(server, "report/leak.txt")[0] == 403
    assert get(server, "report/dir_leak/secret.txt")[0] == 403
    assert get(server, f"report/{secret}")[0] == 403  # an absolute path: empty segments
    assert get(server, "report/figures/../../secret.txt")[0] == 403
    assert get(server, "report/inside.png") == get(server, "report/figures/a.png")
    status, _, body = get(server, "report/")
    assert status == 200 and b".viewer-link{display:inline!important}" in body


def test_security_headers(server: Any) -> None:
    _, headers, _ = get(server, "api/cases")
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in headers["Content-Security-Policy"]


def test_root_redirects_to_the_single_case(server: Any) -> None:
    status, headers, _ = get(server, "")
    assert status == 302 and headers["Location"] == f"/{server.token}/case/ct/"
    status, headers, _ = request(server, f"/{server.token}")
    assert status == 302 and headers["Location"] == f"/{server.token}/"
    status, headers, body = get(server, "case/ct/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"niivue.umd.js" in body
    assert get(server, "case/other/")[0] == 404


def test_niivue_is_served_offline_and_matches_its_pinned_hash(server: Any) -> None:
    readme = (static_dir() / "niivue" / "README.md").read_text()
    pinned = re.search(r"`niivue.umd.js` \(decompressed\) \| (\d+) \| `([0-9a-f]{64})`", readme)
    assert pinned is not None
    status, headers, body = get(server, "static/niivue/niivue.umd.js")  # no Accept-Encoding
    assert status == 200 and "Content-Encoding" not in headers
    assert len(body) == int(pinned[1]) and hashlib.sha256(body).hexdigest() == pinned[2]
    status, headers, zipped = get(
        server, "static/niivue/niivue.umd.js", headers={"Accept-Encoding": "gzip, deflate"}
    )
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped) == body
    assert headers["Content-Type"].startswith("text/javascript")
    page = (static_dir() / "viewer.html").read_text() + (static_dir() / "study.html").read_text()
    assert "http" not in page  # every resource is relative: no CDN


def test_case_api_matches_the_statistics(server: Any, phantom_case: Any) -> None:
    status, _, body = get(server, "api/cases")
    listing = json.loads(body)
    assert status == 200 and listing["mode"] == "case"
    assert [c["case_id"] for c in listing["cases"]] == ["ct"]
    info = json.loads(get(server, "api/case/ct")[2])
    assert info["shape"] == list(phantom_case.image.shape) and info["has_labels"]
    table = compute_statistics(phantom_case.image, phantom_case.label_map)
    by_name = {s["name"]: s for s in info["structures"]}
    assert list(by_name) == [r.name for r in sorted(table, key=lambda r: r.label)]
    liver = table["liver"]
    assert by_name["liver"]["volume_ml"] == pytest.approx(liver.volume_ml)
    assert by_name["liver"]["mean_hu"] == pytest.approx(liver.mean_hu)
    assert by_name["liver"]["centroid_mm"] == pytest.approx(list(liver.centroid_mm))
    absent = next(r for r in table if r.status == "absent")
    assert by_name[absent.name]["volume_ml"] is None  # NaN is sent as null, never as 0


def test_volumes_are_gzip_nifti_on_the_ct_grid(server: Any, phantom_case: Any) -> None:
    ct = _decode(get(server, "api/case/ct/ct.nii.gz")[2])
    assert ct.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(ct.dataobj), phantom_case.image.array)
    np.testing.assert_allclose(ct.affine, phantom_case.image.affine)
    labels = _decode(get(server, "api/case/ct/labels.nii.gz")[2])
    np.testing.assert_array_equal(np.asarray(labels.dataobj), phantom_case.label_map.array)
    assert labels.header.get_intent()[0] == "label"  # NiiVue's label shader needs it
    assert b"<![CDATA[liver]]>" in labels.header.extensions[0].get_content()
    assert (
        get(server, "api/case/ct/ct-preview.nii.gz")[2] == get(server, "api/case/ct/ct.nii.gz")[2]
    )
    assert get(server, "api/case/ct/brain.nii.gz")[0] == 404
    assert get(server, "api/case/nope")[0] == 404


def test_a_ct_without_labels_has_no_label_volume(serve: Any, phantom_case: Any) -> None:
    server = serve(open_case(phantom_case.ct))
    info = json.loads(get(server, "api/case/ct")[2])
    assert info["has_labels"] is False and info["structures"] == []
    assert get(server, "api/case/ct/labels.nii.gz")[0] == 404
    assert get(server, "api/case/ct/ct.nii.gz")[0] == 200


def test_an_unreadable_study_case_is_a_json_error(serve: Any, study_folder: Path) -> None:
    server = serve(open_study(study_folder))
    status, _, body = get(server, "api/case/p2")
    assert status == 422 and "Expected a readable NIfTI file" in json.loads(body)["error"]
    assert get(server, "api/case/p0")[0] == 200
    status, _, body = get(server, "")
    assert status == 200 and b"study.js" in body


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_server_url_holds_the_token(server: Any) -> None:
    assert server.url == f"http://127.0.0.1:{server.server_address[1]}/{server.token}/"
    assert len(server.token) >= 32


def test_an_internal_error_is_a_500_and_the_server_goes_on(serve: Any, case_catalog: Any) -> None:
    from dataclasses import replace

    from totalseg.viewer import CaseCache

    def broken(case_id: str) -> Any:
        raise RuntimeError("boom")

    server = serve(replace(case_catalog, cache=CaseCache(broken)))
    status, _, body = get(server, "api/case/ct")
    assert status == 500 and json.loads(body)["error"] == "internal error: RuntimeError: boom"
    assert get(server, "api/cases")[0] == 200
