"""The output-writing layer: atomic files and folders, input protection, OS errors, signals."""

from __future__ import annotations

import errno
import os
import signal
import stat
from pathlib import Path

import pytest

from totalseg.errors import OutputError
from totalseg.io.outputs import (
    _signals_deferred,
    atomic_file,
    atomic_folder,
    check_not_input,
    check_writable,
    output_errors,
    write_bytes_atomic,
)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_file_mode_and_cleanup(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_bytes_atomic(tmp_path / "a.txt", b"one")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "a.txt") as tmp:
        tmp.write_bytes(b"two")
        raise RuntimeError
    assert (tmp_path / "a.txt").read_bytes() == b"one" and _hidden(tmp_path) == []


def test_atomic_folder_appears_whole_swaps_and_merges(tmp_path: Path) -> None:
    target = tmp_path / "masks"
    with pytest.raises(KeyboardInterrupt), atomic_folder(target) as tmp:
        (tmp / "a.nii.gz").write_bytes(b"half")
        raise KeyboardInterrupt
    assert not target.exists() and _hidden(tmp_path) == []
    for content in (b"1", b"2"):
        with atomic_folder(target) as tmp:
            (tmp / "a.nii.gz").write_bytes(content)
    assert (target / "a.nii.gz").read_bytes() == b"2" and _hidden(tmp_path) == []
    (target / "notes.txt").write_text("mine")
    with atomic_folder(target) as tmp:
        (tmp / "a.nii.gz").write_bytes(b"3")
    assert sorted(p.name for p in target.iterdir()) == ["a.nii.gz", "notes.txt"]


def test_stale_temp_entries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead, alive = tmp_path / f".m.tmp-{2**22 + 7}-x", tmp_path / f".m.tmp-{os.getppid()}-y"
    dead.mkdir()
    alive.mkdir()
    with atomic_folder(tmp_path / "m") as tmp:
        (tmp / "f").write_bytes(b"x")
    assert not dead.exists() and alive.exists()


def test_check_not_input(tmp_path: Path) -> None:
    src = tmp_path / "ct.nii.gz"
    src.write_bytes(b"x")
    os.link(src, tmp_path / "hard.nii.gz")
    (tmp_path / "sym.nii.gz").symlink_to(src)
    (tmp_path / "sub").mkdir()
    for out in (
        src,
        tmp_path / "hard.nii.gz",
        tmp_path / "sym.nii.gz",
        tmp_path / "sub" / ".." / "ct.nii.gz",
    ):
        with pytest.raises(OutputError, match="would replace the input"):
            check_not_input([out], [src])
    check_not_input([tmp_path / "other.nii.gz"], [src])


def test_os_errors_are_one_line_with_the_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"'.*file/a\.txt': a file is in the way .*'.*file'"):
        write_bytes_atomic(tmp_path / "file" / "a.txt", b"x")
    no_space = pytest.raises(OutputError, match=r"no space left on the device; free disk space")
    with no_space, output_errors(tmp_path / "x"):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OutputError, match="existing folder, a file is wanted"):
        check_writable(tmp_path, folder=False)
    with pytest.raises(OutputError, match="a file is in the way"):
        check_writable(tmp_path / "file", folder=True)


def test_signals_are_deferred_to_the_end_of_a_commit() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), _signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append(1)
    assert done == [1]
