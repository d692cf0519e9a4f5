"""The official weights from the release server: download every archive of a task, verified.

Each archive is streamed over HTTPS with progress (`DownloadReporter`), length-checked and
verified by sha256 before it is imported: against the user's pin (`--sha256`, a hash file), the
package's pin, or, for an archive no one pinned, the hash recorded in `weights.lock.json` the
first time it was downloaded (trust on first use; see `models.lock`). A task whose weights are
missing is downloaded on first use (`ensure_model_folder`) unless downloads are off
(`download=False`, or `TOTALSEG_OFFLINE=1` in the environment). A failed download leaves
neither a temp file nor an installed folder. Torch-free.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from totalseg.errors import ConfigError, DownloadError, WeightsNotFoundError
from totalseg.models.download import fetch_verified
from totalseg.models.lock import (
    LockedArchive,
    check_against_lock,
    normalize_sha256,
    read_lock,
    record_archive,
)
from totalseg.models.tasks import WeightsEntry, get_task, weights_entry
from totalseg.models.weights import (
    bundled_model_folder,
    find_model_folder,
    import_weights,
    weights_dir,
)

__all__ = [
    "DownloadReporter",
    "DownloadedArchive",
    "download_weights",
    "ensure_model_folder",
    "offline",
]

log = logging.getLogger(__name__)

#: what vouched for a downloaded archive's sha256
PinSource = Literal["package", "user", "lock", "first use"]


@dataclass(frozen=True)
class DownloadedArchive:
    """One archive fetched and verified: its sha256 and what vouched for it
    (`package`: pinned in this totalseg version; `user`: --sha256 or a hash file; `lock`: the
    hash recorded at its first download; `first use`: nothing, now recorded in the lock)."""

    dataset_id: int
    name: str
    sha256: str
    size_bytes: int
    pinned_by: PinSource
    lock_file: Path
    installed: tuple[Path, ...]


class DownloadReporter:
    """Receives download progress; the default ignores it (the CLI draws a progress bar)."""

    def archive_started(self, name: str, index: int, n_archives: int) -> None:
        """Archive `index` (0-based) of `n_archives` starts downloading."""

    def archive_progress(self, done_bytes: int, total_bytes: int | None) -> None:
        """Bytes received so far of the current archive."""

    def archive_finished(self, archive: DownloadedArchive) -> None:
        """The archive was verified and installed."""


def offline() -> bool:
    """True when `TOTALSEG_OFFLINE` is set to 1/true/yes: never download anything."""
    return os.environ.get("TOTALSEG_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _entries(task: str) -> list[WeightsEntry]:
    if task.isdigit():
        return [weights_entry(int(task))]
    return [weights_entry(d) for d in get_task(task).datasets]


def download_weights(
    task: str,
    *,
    home: str | Path | None = None,
    expected_sha256: str | None = None,
    pins: Mapping[str, str] | None = None,
    url: str | None = None,
    overwrite: bool = False,
    reporter: DownloadReporter | None = None,
    timeout_s: float = 60.0,
) -> list[Path]:
    """Download and install every archive of a task (or of one dataset id such as "291").

    Each archive is length-checked and verified by sha256 before it is imported: against
    `expected_sha256` (one archive only) or `pins` ({archive name: sha256}, e.g. from a hash
    file), else the package's pin, else the hash recorded in the weights lock at its first
    download; an archive no one pinned is trusted on first use and its hash recorded. Model
    folders already available (installed, shipped, or in a TotalSegmentator install) are kept
    unless `overwrite`. Refused when `TOTALSEG_OFFLINE` is set.
    """
    entries = _entries(task)
    if url and len(entries) != 1:
        ids = ", ".join(str(e.dataset_id) for e in entries)
        raise ConfigError(
            f"--url applies to one archive, but task {task!r} has {len(entries)} ({ids}); "
            "download them one at a time by dataset id."
        )
    pins = dict(pins or {})
    if expected_sha256 is not None:
        if len(entries) != 1:
            raise ConfigError(
                f"Expected one archive for a bare --sha256, but task {task!r} has "
                f"{len(entries)}; pass --sha256 ID=HEX per archive or --hashes FILE."
            )
        pins[_archive_name(entries[0])] = expected_sha256
    pins = {k: normalize_sha256(v, where=k) for k, v in pins.items()}
    reporter = reporter or DownloadReporter()
    root = weights_dir(home)
    out: list[Path] = []
    todo: list[WeightsEntry] = []
    for entry in entries:
        if entry.format == "bundled":  # shipped in the package: nothing to download
            out.append(bundled_model_folder(entry))
            continue
        if not overwrite:
            try:
                out.append(find_model_folder(entry.dataset_id, home=home))
                continue
            except WeightsNotFoundError:
                pass
        todo.append(entry)
    if todo and offline():
        raise DownloadError(
            f"Expected to download {', '.join(_archive_name(e) for e in todo)}, but "
            "TOTALSEG_OFFLINE is set; unset it, or import the weights with "
            "`totalseg weights import ZIP_OR_DIR`."
        )
    for index, entry in enumerate(todo):
        reporter.archive_started(_archive_name(entry), index, len(todo))
        record = _download_one(
            entry, root, home=home, pin=pins.get(_archive_name(entry)), url=url,
            overwrite=overwrite, reporter=reporter, timeout_s=timeout_s,
        )  # fmt: skip
        out += record.installed
        reporter.archive_finished(record)
    return out


def _archive_name(entry: WeightsEntry) -> str:
    return f"{entry.folder}.zip"


def _download_one(
    entry: WeightsEntry,
    root: Path,
    *,
    home: str | Path | None,
    pin: str | None,
    url: str | None,
    overwrite: bool,
    reporter: DownloadReporter,
    timeout_s: float,
) -> DownloadedArchive:
    name, source = _archive_name(entry), url or entry.url
    locked = read_lock(root).get(name)
    expected = pin or entry.sha256 or (locked.sha256 if locked else None)
    pinned_by: PinSource = (
        "user" if pin else "package" if entry.sha256 else "lock" if locked else "first use"
    )
    root.mkdir(parents=True, exist_ok=True)
    archive, sha = fetch_verified(
        source, root, expected, progress=reporter.archive_progress, timeout_s=timeout_s
    )
    try:
        check_against_lock(root, name, sha, url=source)
        installed = import_weights(archive, home=home, overwrite=overwrite, expect=entry.relpath)
        size = archive.stat().st_size
    finally:
        archive.unlink(missing_ok=True)
    lock = record_archive(root, LockedArchive(name, sha, size, source))
    log.info("installed %s (sha256 %s, %s)", name, sha, pinned_by)
    return DownloadedArchive(
        entry.dataset_id,
        name,
        sha,
        size,
        pinned_by,
        lock,
        tuple(installed),
    )


def ensure_model_folder(
    dataset_id: int,
    *,
    home: str | Path | None = None,
    download: bool = True,
    reporter: DownloadReporter | None = None,
) -> Path:
    """`find_model_folder`, downloading the official archive first when it is missing (unless
    `download` is False or TOTALSEG_OFFLINE is set)."""
    try:
        return find_model_folder(dataset_id, home=home)
    except WeightsNotFoundError as exc:
        try:
            entry: WeightsEntry | None = weights_entry(dataset_id)
        except ConfigError:
            entry = None
        if entry is None or entry.format == "bundled" or not entry.url:
            raise
        if not download or offline():
            why = "--no-download" if not download else "TOTALSEG_OFFLINE is set"
            raise WeightsNotFoundError(f"{exc} Automatic download is off ({why}).") from None
    log.warning("weights of dataset %d are missing; downloading them", dataset_id)
    download_weights(str(dataset_id), home=home, reporter=reporter)
    return find_model_folder(dataset_id, home=home)
