"""The sha256 lock of downloaded weight archives, and user pins (torch-free, stdlib only).

Trust on first use: an archive that no one pinned (neither this package, nor the user with
`--sha256` or a hash file) is hashed while it downloads and its sha256 is recorded in
`<home>/weights/weights.lock.json`; every later download of an archive of that name must have
the same hash or it is refused. The lock is a plain JSON file that a user can copy to another
machine, or turn into a hash file to pin the download there (`sha256sum` format:
`HEX  Dataset291_....zip`, which is also what `totalseg weights download` prints).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from totalseg.errors import ConfigError, DownloadError

__all__ = [
    "LOCK_NAME",
    "LockedArchive",
    "check_against_lock",
    "normalize_sha256",
    "parse_pins",
    "read_hash_file",
    "read_lock",
    "record_archive",
]

LOCK_NAME = "weights.lock.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class LockedArchive:
    """One archive seen before: its name, hash, size and where it came from."""

    name: str
    sha256: str
    size_bytes: int
    url: str


def normalize_sha256(value: str, *, where: str = "") -> str:
    """Lower-case 64 hex digits, or a ConfigError naming where the value came from."""
    sha = value.strip().lower()
    if not _HEX64.fullmatch(sha):
        place = f" ({where})" if where else ""
        raise ConfigError(f"Expected a sha256 of 64 hex digits{place}, got {value!r}.")
    return sha


def read_lock(root: Path) -> dict[str, LockedArchive]:
    """The archives recorded in `root/weights.lock.json` by name (empty when there is none)."""
    path = root / LOCK_NAME
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Expected a readable weights lock file at '{path}', got {exc!r}."
        ) from None
    return _parse_lock(text, path)


def _parse_lock(text: str, path: Path) -> dict[str, LockedArchive]:
    try:
        doc = json.loads(text)
        return {
            name: LockedArchive(
                name=name,
                sha256=normalize_sha256(str(e["sha256"]), where=f"{path}, {name}"),
                size_bytes=int(e["size_bytes"]),
                url=str(e["url"]),
            )
            for name, e in doc["archives"].items()
        }
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"Expected a weights lock file like {{'archives': {{NAME: {{'sha256': ...}}}}}} at "
            f"'{path}', got an unreadable one ({exc!r}); fix or delete it."
        ) from None


def record_archive(root: Path, archive: LockedArchive) -> Path:
    """Add (or keep) `archive` in the lock file, written atomically; returns the lock path."""
    entries = read_lock(root)
    entries[archive.name] = archive
    doc = {
        "_comment": "sha256 of every weight archive downloaded into this home (trust on first "
        "use); `totalseg weights download` refuses an archive whose hash differs.",
        "archives": {
            name: {k: v for k, v in asdict(e).items() if k != "name"}
            for name, e in sorted(entries.items())
        },
    }
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{LOCK_NAME}.", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, root / LOCK_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return root / LOCK_NAME


def check_against_lock(root: Path, name: str, sha256: str, *, url: str) -> LockedArchive | None:
    """Refuse an archive whose hash differs from the one recorded for its name; returns the
    recorded entry (None when this archive was never seen)."""
    seen = read_lock(root).get(name)
    if seen is not None and seen.sha256 != sha256:
        raise DownloadError(
            f"sha256 of {name} from {url} is {sha256}, but {root / LOCK_NAME} recorded "
            f"{seen.sha256} when it was first downloaded (from {seen.url}); nothing was "
            "installed. If the release was re-published on purpose, verify the new file and "
            "delete its entry from the lock file."
        )
    return seen


def read_hash_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Pins from a `sha256sum`-style file (`HEX  NAME` or `HEX *NAME` per line, `#` comments)
    or a totalseg lock file; keys are archive names (e.g. `Dataset291_....zip`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Expected a readable hash file at '{p}', got {exc!r}.") from None
    if text.lstrip().startswith("{"):
        return {n: e.sha256 for n, e in _parse_lock(text, p).items()}
    pins: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise ConfigError(
                f"Expected 'SHA256  NAME' on line {number} of '{p}', got {line!r} "
                "(the format `sha256sum` writes)."
            )
        sha, name = parts
        pins[Path(name.lstrip("*")).name] = normalize_sha256(sha, where=f"'{p}' line {number}")
    return pins


def parse_pins(
    values: Sequence[str], *, hash_file: str | os.PathLike[str] | None, archives: Mapping[str, str]
) -> dict[str, str]:
    """User pins for the archives to download: `archives` maps each dataset id (as text) to its
    archive name. Values are `HEX` (only when one archive is downloaded) or `ID=HEX` /
    `NAME.zip=HEX`; a hash file adds `sha256sum` lines. Returns {archive name: sha256}."""
    pins = dict(read_hash_file(hash_file)) if hash_file is not None else {}
    by_key = {**archives, **{v: v for v in archives.values()}}
    for value in values:
        key, sep, sha = value.rpartition("=")
        if not sep:
            if len(archives) != 1:
                raise ConfigError(
                    f"Expected --sha256 ID=HEX (or --hashes FILE) for {len(archives)} archives "
                    f"({', '.join(archives)}), got a bare hash; name the archive each hash is for."
                )
            key, sha = next(iter(archives)), value
        if key not in by_key:
            raise ConfigError(
                f"Expected --sha256 for one of {', '.join(archives)} (dataset id or archive "
                f"name), got {key!r}."
            )
        pins[by_key[key]] = normalize_sha256(sha, where="--sha256")
    return pins
