"""The one guarded reader of every zip archive totalseg opens (weights imports, DICOM zips,
checkpoint pickles).

Before anything is read, the central directory is checked: member names must be relative
(no absolute paths, drive letters, `..` or backslashes), no symbolic links, and the sizes the
archive declares must stay under `ArchiveLimits` (total uncompressed size, size of one member,
compression ratio). While a member is streamed the bytes are counted again, so an archive whose
members inflate past what they declare (or past the limits) is stopped there, not after.

The limits are generous for real data and can be raised from the environment:
`TOTALSEG_ZIP_MAX_TOTAL_GB` (default 32), `TOTALSEG_ZIP_MAX_MEMBER_GB` (default 8 for weights,
0.25 for one DICOM slice) and `TOTALSEG_ZIP_MAX_RATIO` (default 100).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from totalseg.errors import InputError, TotalsegError

__all__ = ["ArchiveLimits", "GuardedZip", "is_zip"]

_GB = 1 << 30
_CHUNK_BYTES = 1 << 20
#: members (and archives) below these sizes are not ratio-checked: small text files such as
#: plans.json legitimately compress far better than image data
_RATIO_FLOOR_MEMBER_BYTES = 1 << 20
_RATIO_FLOOR_TOTAL_BYTES = 64 << 20
_ENV_TOTAL = "TOTALSEG_ZIP_MAX_TOTAL_GB"
_ENV_MEMBER = "TOTALSEG_ZIP_MAX_MEMBER_GB"
_ENV_RATIO = "TOTALSEG_ZIP_MAX_RATIO"


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may hold: uncompressed bytes in all, in one member, and the largest
    compression ratio (uncompressed / compressed) of a member or of the whole archive."""

    max_total_bytes: int = 32 * _GB
    max_member_bytes: int = 8 * _GB
    max_ratio: float = 100.0

    @classmethod
    def from_env(cls, *, member_gb: float = 8.0) -> ArchiveLimits:
        """The defaults (`member_gb` per member), overridden by the environment variables."""
        return cls(
            max_total_bytes=int(_env_float(_ENV_TOTAL, 32.0) * _GB),
            max_member_bytes=int(_env_float(_ENV_MEMBER, member_gb) * _GB),
            max_ratio=_env_float(_ENV_RATIO, 100.0),
        )


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InputError(f"Expected a positive number in ${name}, got {raw!r}; fix or unset it.")
    return value


def is_zip(path: str | os.PathLike[str]) -> bool:
    """True for a readable file that starts like a zip archive."""
    try:
        return Path(path).is_file() and zipfile.is_zipfile(path)
    except OSError:
        return False


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")  # some Windows tools write backslashes
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "path traversal"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    return None


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / _GB:.3g} GB"


class GuardedZip:
    """A zip archive opened for reading under `limits`; every problem is raised as `error`
    (e.g. ModelError for weights, DicomError for DICOM) in one line naming the archive."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        limits: ArchiveLimits | None = None,
        error: type[TotalsegError] = InputError,
    ) -> None:
        self.path = Path(path)
        self.limits = limits or ArchiveLimits.from_env()
        self.error = error
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            raise error(
                f"Expected a readable zip archive, got '{self.path}' ({exc}); re-create or "
                "re-download it."
            ) from None
        try:
            self.members = self._checked_members()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> GuardedZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def _refuse(self, what: str) -> TotalsegError:
        return self.error(f"Refusing the archive '{self.path}': {what}; {self._hint()}")

    def _hint(self) -> str:
        return (
            f"if it is genuine, raise the limits with ${_ENV_TOTAL}, ${_ENV_MEMBER} or "
            f"${_ENV_RATIO} (see README, 'Bad input and interruptions')."
        )

    def _checked_members(self) -> list[zipfile.ZipInfo]:
        """The regular-file members, after checking names and declared sizes of all."""
        infos = self._zip.infolist()
        for info in infos:
            reason = _unsafe_reason(info)
            if reason:
                raise self.error(
                    f"Refusing the archive '{self.path}': member with the unsafe name "
                    f"{info.filename!r} (an unsafe {reason}); "
                    "use an archive with plain relative member names."
                )
        files = [i for i in infos if not i.is_dir()]
        lim = self.limits
        for info in files:
            if info.file_size > lim.max_member_bytes:
                raise self._refuse(
                    f"member {info.filename!r} inflates to {_gb(info.file_size)}, over the "
                    f"{_gb(lim.max_member_bytes)} allowed for one member"
                )
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > _RATIO_FLOOR_MEMBER_BYTES and ratio > lim.max_ratio:
                raise self._refuse(
                    f"member {info.filename!r} inflates {ratio:.0f}-fold (to "
                    f"{_gb(info.file_size)}), over the {lim.max_ratio:g}-fold allowed (zip bomb?)"
                )
        total = sum(i.file_size for i in files)
        packed = max(sum(i.compress_size for i in files), 1)
        if total > lim.max_total_bytes:
            raise self._refuse(
                f"it inflates to {_gb(total)}, over the {_gb(lim.max_total_bytes)} allowed"
            )
        if total > _RATIO_FLOOR_TOTAL_BYTES and total / packed > lim.max_ratio:
            raise self._refuse(
                f"it inflates {total / packed:.0f}-fold (to {_gb(total)}), over the "
                f"{lim.max_ratio:g}-fold allowed (zip bomb?)"
            )
        return files

    def chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """The bytes of one member in chunks, stopped as soon as it exceeds what it declared."""
        done = 0
        try:
            with self._zip.open(info) as src:
                while chunk := _read(src):
                    done += len(chunk)
                    if done > info.file_size or done > self.limits.max_member_bytes:
                        raise self._refuse(
                            f"member {info.filename!r} inflates past its declared "
                            f"{info.file_size} bytes"
                        )
                    yield chunk
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            raise self.error(
                f"Expected a readable zip member, got {' '.join(str(exc).split())} "
                f"({info.filename!r} in '{self.path}'); re-create or re-download the archive."
            ) from None

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """One member's bytes (checked like `chunks`)."""
        return b"".join(self.chunks(info))

    def extract_all(self, dest: Path) -> None:
        """Every member into `dest` (a fresh folder), directories included."""
        dest.mkdir(parents=True, exist_ok=True)
        dirs = [i for i in self._zip.infolist() if i.is_dir()]
        for info in dirs:
            _member_path(dest, info).mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(dest).free
        needed = sum(i.file_size for i in self.members)
        if needed > free:
            raise self.error(
                f"Expected {_gb(needed)} free to extract '{self.path}', got {_gb(free)} in "
                f"'{dest}'; free disk space or set TOTALSEG_HOME to another disk."
            )
        for info in self.members:
            target = _member_path(dest, info)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                for chunk in self.chunks(info):
                    out.write(chunk)


def _member_path(dest: Path, info: zipfile.ZipInfo) -> Path:
    return dest.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)


def _read(src: IO[bytes]) -> bytes:
    return src.read(_CHUNK_BYTES)
