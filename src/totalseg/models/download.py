"""Streaming download with sha256 and length verification (torch-free, stdlib only)."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from totalseg.errors import ConfigError, DownloadError

#: progress(bytes_done, bytes_total or None)
Progress = Callable[[int, "int | None"], None]
_CHUNK_BYTES = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def fetch_verified(
    url: str, root: Path, sha: str | None, *, progress: Progress | None, timeout_s: float
) -> tuple[Path, str]:
    """Stream `url` to a temp file in `root`, hashing as it goes.

    Returns the temp file and its sha256 once its length (Content-Length) matches and, when
    `sha` is given, its hash too; the caller deletes the file after use. On any failure the
    temp file is removed and DownloadError raised: a partial download is never left behind.
    """
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"Expected an http(s) URL, got {url!r}.")
    from totalseg import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"totalseg/{__version__}"})
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".zip.part", dir=root)
    tmp = Path(name)
    try:
        h, n_bytes, total = hashlib.sha256(), 0, None
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(request, timeout=timeout_s) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := resp.read(_CHUNK_BYTES):
                f.write(chunk)
                h.update(chunk)
                n_bytes += len(chunk)
                if progress is not None:
                    progress(n_bytes, total)
        if total is not None and n_bytes != total:
            raise DownloadError(
                f"Download of {url} was truncated: expected {total} bytes, got {n_bytes}; "
                "nothing was installed, retry."
            )
        if sha is not None and h.hexdigest() != sha:
            raise DownloadError(
                f"sha256 mismatch for {url}: expected {sha}, got {h.hexdigest()} "
                f"({n_bytes} bytes); nothing was installed. Retry, or check the URL and hash."
            )
        return tmp, h.hexdigest()
    except DownloadError:
        tmp.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        reason = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else repr(exc)
        raise DownloadError(
            f"Download of {url} failed ({reason}); nothing was installed. Check the network "
            "and retry, or download the zip yourself and run `totalseg weights import ZIP`."
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
