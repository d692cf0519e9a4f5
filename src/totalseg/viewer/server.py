"""The viewer's local HTTP server: read-only, token-guarded, loopback by default.

Every URL starts with the secret token, `http://HOST:PORT/<token>/...`, so that relative links
(the study report's into the case table) keep it; any other path gets 403. Only GET and HEAD are
served (other methods: 405); nothing writes a file. Routes below the token:

    ''                          single case: redirect to its viewer; study: the case table
    case/<id>/                  the case viewer page
    api/cases                   JSON: mode, title, case table rows
    api/case/<id>               JSON: the case's grid and structures (loads the case)
    api/case/<id>/<volume>      ct.nii.gz, labels.nii.gz, ct-preview.nii.gz, labels-preview.nii.gz
    static/<file>               the page's files (package data)
    report/<file>               the study's `study analyze` folder (report.html, figures)

A client names files only below static/ and report/; those paths are resolved inside their
folder (no '..', no absolute or empty segments, no symlink that leads out: 403; missing: 404).
Case files are found by case id from the catalog, never by a client-given path.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import logging
import secrets
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from totalseg.errors import TotalsegError
from totalseg.viewer.cases import VolumeKind
from totalseg.viewer.catalog import REPORT_NAME, Catalog

__all__ = ["ViewerServer", "is_loopback", "resolve_inside", "static_dir"]

log = logging.getLogger(__name__)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
_VOLUMES: dict[str, tuple[VolumeKind, bool]] = {
    "ct.nii.gz": ("ct", False),
    "ct-preview.nii.gz": ("ct", True),
    "labels.nii.gz": ("labels", False),
    "labels-preview.nii.gz": ("labels", True),
}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self' blob: data:; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# Shown only when the report is served here: the report's links into the case table.
_REPORT_STYLE = b"<style>.viewer-link{display:inline!important}</style></head>"


class _Refused(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def static_dir() -> Path:
    return Path(str(resources.files("totalseg.viewer").joinpath("static")))


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_inside(root: Path, parts: list[str]) -> Path:
    """The file `root/parts...`, strictly inside `root` (symlinks resolved): 403 for '..',
    '.', empty or separator-holding segments and for anything resolving outside; 404 if no
    such file."""
    bad = ("", ".", "..")
    if not parts or any(p in bad or "/" in p or "\\" in p or "\x00" in p for p in parts):
        raise _Refused(HTTPStatus.FORBIDDEN, "path outside the served folder")
    base = root.resolve()
    target = base.joinpath(*parts).resolve()
    if not target.is_relative_to(base):
        raise _Refused(HTTPStatus.FORBIDDEN, "path outside the served folder")
    if not target.is_file():
        raise _Refused(HTTPStatus.NOT_FOUND, "no such file")
    return target


class ViewerServer(ThreadingHTTPServer):
    """Serves one catalog under a random token; `url` is what the user opens."""

    daemon_threads = True

    def __init__(self, catalog: Catalog, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.catalog = catalog
        self.token = secrets.token_urlsafe(24)
        self.static_root = static_dir()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/{self.token}/"


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"
    server_version = "totalseg-view"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def __getattr__(self, name: str) -> Callable[[], None]:
        if name.startswith("do_"):  # every other method: read-only server
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"read-only: GET and HEAD only\n",
            "text/plain; charset=utf-8",
            head=False,
            extra={"Allow": "GET, HEAD"},
        )

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self, *, head: bool) -> None:
        raw = urlsplit(self.path).path
        segments = raw.split("/")[1:]
        if not segments or not secrets.compare_digest(segments[0], self.server.token):
            self._send(
                HTTPStatus.FORBIDDEN,
                b"forbidden: open the URL printed by totalseg view\n",
                "text/plain; charset=utf-8",
                head=head,
            )
            return
        if len(segments) == 1:
            self._redirect(f"/{self.server.token}/")
            return
        try:
            self._route([unquote(s) for s in segments[1:]], head=head)
        except _Refused as exc:
            self._send(exc.status, f"{exc}\n".encode(), "text/plain; charset=utf-8", head=head)
        except TotalsegError as exc:  # a case that cannot be read: the page shows why
            log.warning("%s", exc)
            self._json({"error": str(exc)}, head=head, status=HTTPStatus.UNPROCESSABLE_ENTITY)
        except ConnectionError:  # the browser went away mid-answer
            log.debug("client closed the connection: %s", self.path)
        except Exception as exc:  # a bug: answered, logged, the server goes on
            log.exception("internal error serving a request")
            error = f"internal error: {type(exc).__name__}: {exc}"
            self._json({"error": error}, head=head, status=HTTPStatus.INTERNAL_SERVER_ERROR)

    def _route(self, parts: list[str], *, head: bool) -> None:
        catalog = self.server.catalog
        first, rest = parts[0], parts[1:]
        if first == "" and not rest:
            if catalog.mode == "case":
                only = next(iter(catalog.specs))
                self._redirect(f"/{self.server.token}/case/{quote(only, safe='')}/")
            else:
                self._file(self.server.static_root / "study.html", head=head)
        elif first == "case" and len(rest) == 2 and rest[1] == "":
            self._known(rest[0])
            self._file(self.server.static_root / "viewer.html", head=head)
        elif first == "api":
            self._api(rest, head=head)
        elif first == "static":
            self._file(self._static(rest), head=head)
        elif first == "report" and catalog.report_dir is not None:
            target = resolve_inside(catalog.report_dir, rest if rest != [""] else [REPORT_NAME])
            self._file(target, head=head)
        else:
            raise _Refused(HTTPStatus.NOT_FOUND, "not found")

    def _known(self, case_id: str) -> None:
        if case_id not in self.server.catalog.specs:
            raise _Refused(HTTPStatus.NOT_FOUND, f"no case {case_id!r}")

    def _api(self, rest: list[str], *, head: bool) -> None:
        catalog = self.server.catalog
        if rest == ["cases"]:
            self._json(catalog.listing(), head=head)
            return
        if len(rest) not in (2, 3) or rest[0] != "case":
            raise _Refused(HTTPStatus.NOT_FOUND, "not found")
        self._known(rest[1])
        case = catalog.case(rest[1])
        if len(rest) == 2:
            self._json(case.info(), head=head)
            return
        volume = _VOLUMES.get(rest[2])
        if volume is None or (volume[0] == "labels" and case.label_map is None):
            raise _Refused(HTTPStatus.NOT_FOUND, "no such volume")
        data = case.volume_gz(volume[0], preview=volume[1])
        self._send(HTTPStatus.OK, data, "application/octet-stream", head=head)

    def _static(self, rest: list[str]) -> Path:
        """A static file; `x.js` may be stored as `x.js.gz` (sent gzip-encoded)."""
        try:
            return resolve_inside(self.server.static_root, rest)
        except _Refused as exc:
            if exc.status != HTTPStatus.NOT_FOUND:
                raise
            return resolve_inside(self.server.static_root, [*rest[:-1], rest[-1] + ".gz"])

    def _file(self, path: Path, *, head: bool) -> None:
        data = path.read_bytes()
        extra: dict[str, str] = {}
        name = path.name
        if name.endswith(".gz") and path.parent.is_relative_to(self.server.static_root.resolve()):
            name = name[:-3]
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                extra["Content-Encoding"] = "gzip"
            else:
                data = gzip.decompress(data)
        if name == REPORT_NAME:
            data = data.replace(b"</head>", _REPORT_STYLE, 1)
        ctype = _TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
        self._send(HTTPStatus.OK, data, ctype, head=head, extra=extra)

    def _json(self, doc: Any, *, head: bool, status: HTTPStatus = HTTPStatus.OK) -> None:
        body = json.dumps(doc, allow_nan=False).encode()
        self._send(status, body, "application/json", head=head)

    def _redirect(self, location: str) -> None:
        self._send(HTTPStatus.FOUND, b"", "text/plain", head=True, extra={"Location": location})

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        ctype: str,
        *,
        head: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", _CSP)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)
