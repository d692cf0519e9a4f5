"""The guarded zip reader: names, declared sizes, ratio, streaming enforcement, env limits."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest

from totalseg.errors import DicomError, InputError
from totalseg.io.archive import ArchiveLimits, GuardedZip, is_zip


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_reads_and_extracts_a_plain_archive(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"d/x.txt": b"hello", "y.bin": bytes(range(256))})
    assert is_zip(archive) and not is_zip(tmp_path / "missing.zip")
    with GuardedZip(archive) as zf:
        assert [i.filename for i in zf.members] == ["d/x.txt", "y.bin"]
        assert zf.read(zf.members[0]) == b"hello"
        zf.extract_all(tmp_path / "out")
    assert (tmp_path / "out" / "d" / "x.txt").read_bytes() == b"hello"


@pytest.mark.parametrize(
    ("name", "reason"),
    [("../x", "path traversal"), ("a\\..\\..\\x", "path traversal"), ("/x", "absolute path"),
     ("C:/x", "absolute path")],
)  # fmt: skip
def test_unsafe_names(tmp_path: Path, name: str, reason: str) -> None:
    archive = _zip(tmp_path / "a.zip", {name: b"x"})
    with pytest.raises(DicomError, match=rf"unsafe name .* \(an unsafe {reason}\)"):
        GuardedZip(archive, error=DicomError)


def test_limits_from_the_central_directory(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"big": bytes(2 << 20), "small": b"x" * 100})
    with pytest.raises(InputError, match=r"'big' inflates to .* allowed for one member"):
        GuardedZip(archive, limits=ArchiveLimits(max_member_bytes=1 << 20))
    with pytest.raises(InputError, match=r"it inflates to .* allowed"):
        GuardedZip(archive, limits=ArchiveLimits(max_total_bytes=1 << 20, max_ratio=1e9))
    with pytest.raises(InputError, match=r"'big' inflates \d+-fold .*zip bomb"):
        GuardedZip(archive)


def test_env_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOTALSEG_ZIP_MAX_MEMBER_GB", "0.5")
    monkeypatch.setenv("TOTALSEG_ZIP_MAX_RATIO", "20")
    limits = ArchiveLimits.from_env(member_gb=8)
    assert limits.max_member_bytes == 2**29 and limits.max_ratio == 20
    monkeypatch.setenv("TOTALSEG_ZIP_MAX_RATIO", "-1")
    with pytest.raises(InputError, match=r"positive number in \$TOTALSEG_ZIP_MAX_RATIO"):
        ArchiveLimits.from_env()


def test_a_member_larger_than_declared_is_stopped_while_streaming(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"m": b"abc" * 10000})
    data = bytearray(archive.read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 100)  # declare 100 bytes uncompressed
    archive.write_bytes(bytes(data))
    with GuardedZip(archive) as zf, pytest.raises(InputError, match="'m'"):
        zf.read(zf.members[0])


def test_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(b"nope")
    with pytest.raises(InputError, match=r"readable zip archive, got '.*a\.zip'"):
        GuardedZip(tmp_path / "a.zip")
