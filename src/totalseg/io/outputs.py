"""The one output-writing layer: every file and folder totalseg writes goes through here.

* `atomic_file(path)`: yields a temp path beside `path` (a hidden `.NAME.tmp-PID-XXXX`); when the
  block ends without error the file is fsync'ed, given the usual mode (0666 minus the umask, not
  mkstemp's 0600) and renamed over `path`; on any error or interruption it is removed.
* `atomic_folder(path)`: the same for a folder (e.g. per-class masks): written into a hidden temp
  folder beside it and renamed at the end, so the folder appears complete or not at all. An
  existing folder that holds only entries being rewritten is swapped out whole; one holding
  other files too gets the new files moved in one by one (each rename atomic).
* Temp entries of a run that was killed (SIGKILL, power loss) carry its process id; the next
  write of the same target removes those whose process is gone. The final renames run with
  SIGINT/SIGTERM deferred, so Ctrl-C never lands between two of them.
* `check_not_input(outputs, inputs)`: refuses an output that is an input (same path, or the
  same file through a link: `os.path.samefile`).
* OS errors (read-only folder, permission, full disk, a parent that is a file, a file where a
  folder is wanted) become one-line `OutputError`s naming the path and the cause.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from totalseg.errors import OutputError

__all__ = [
    "atomic_file",
    "atomic_folder",
    "check_not_input",
    "check_writable",
    "output_errors",
    "require_folder",
    "write_bytes_atomic",
]

_CAUSES = {
    errno.EACCES: ("permission denied", "choose a folder you can write to"),
    errno.EPERM: ("permission denied", "choose a folder you can write to"),
    errno.EROFS: ("the file system is read-only", "choose a writable location"),
    errno.ENOSPC: ("no space left on the device", "free disk space or write elsewhere"),
    errno.EDQUOT: ("the disk quota is exceeded", "free disk space or write elsewhere"),
    errno.ENOTDIR: ("a parent of it is a file, not a folder", "choose another output path"),
    errno.EEXIST: ("a file is in the way where a folder is wanted", "choose another path"),
    errno.EISDIR: ("it is an existing folder, a file is wanted", "choose another file name"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter name"),
    errno.ENOENT: ("its folder cannot be created", "check the path"),
}
_TEMP_RE = re.compile(r"\.tmp-(\d+)-")


def _mode(*, folder: bool) -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def _error(exc: OSError, path: Path) -> OutputError:
    fallback = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    cause, todo = _CAUSES.get(exc.errno or 0, (fallback, "check the output location"))
    culprit = Path(exc.filename) if isinstance(exc.filename, str) else None
    if culprit is not None and culprit != path and ".tmp-" not in culprit.name:
        cause = f"{cause} ('{culprit}')"
    return OutputError(f"Cannot write '{path}': {cause}; {todo}.")


@contextmanager
def output_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """OS errors inside the block become one-line OutputErrors naming `path`."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise _error(exc, Path(path)) from exc


def check_not_input(
    outputs: Iterable[str | os.PathLike[str]], inputs: Iterable[str | os.PathLike[str]]
) -> None:
    """Refuse an output that is one of the inputs (same path or same file)."""
    sources = [Path(p) for p in inputs]
    for out in map(Path, outputs):
        for src in sources:
            same = out.absolute() == src.absolute()
            if not same and out.exists() and src.exists():
                same = os.path.samefile(out, src)
            if same:
                raise OutputError(
                    f"Expected an output other than the input, got '{out}' which is the input "
                    f"'{src}'; writing it would replace the input: choose another output path."
                )


def require_folder(path: str | os.PathLike[str]) -> None:
    """Refuse early an output folder that cannot be one (an existing file, or under a file)."""
    target = Path(path)
    for p in (target, *target.parents):
        if p.exists():
            if not p.is_dir():
                raise _error(OSError(errno.EEXIST, "is a file", str(p)), target)
            return


def check_writable(path: str | os.PathLike[str], *, folder: bool) -> None:
    """Refuse early (before any work) an output that cannot be written: a file where a folder
    is wanted or the reverse, a parent that is a file, or a folder without write permission."""
    target = Path(path)
    if folder:
        require_folder(target)
    else:
        if target.is_dir():
            raise _error(OSError(errno.EISDIR, "is a folder", str(target)), target)
        require_folder(target.parent)
    existing = next(p for p in (target.parent, *target.parent.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _error(OSError(errno.EACCES, "permission denied", str(existing)), target)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _clean_stale(target: Path) -> None:
    """Remove temp entries of `target` left by a killed run (their process is gone)."""
    try:
        entries = list(target.parent.glob(f".{glob_escape(target.name)}.tmp-*"))
    except OSError:
        return
    for entry in entries:
        match = _TEMP_RE.search(entry.name[len(target.name) + 1 :])
        if match is None or _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _prefix(target: Path) -> str:
    return f".{target.name}.tmp-{os.getpid()}-"


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM arriving inside the block are acted on (KeyboardInterrupt) at its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def _note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    old = {s: signal.signal(s, _note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if received:
        raise KeyboardInterrupt


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """A temp path beside `path` to write; renamed over `path` when the block succeeds.
    `suffix` ends the temp name (e.g. ".nii.gz" where the writer picks a format by name)."""
    target = Path(path)
    with output_errors(target):
        if target.is_dir():
            raise OSError(errno.EISDIR, "is a directory", str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(target)
        fd, name = tempfile.mkstemp(prefix=_prefix(target), suffix=suffix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            os.chmod(tmp, _mode(folder=False))
            _fsync(tmp)
            with _signals_deferred():
                os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically (see `atomic_file`)."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temp folder beside `path` to fill; it becomes `path` when the block succeeds."""
    target = Path(path)
    with output_errors(target):
        if target.exists() and not target.is_dir():
            raise OSError(errno.EEXIST, "is a file", str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(target)
        tmp = Path(tempfile.mkdtemp(prefix=_prefix(target), dir=target.parent))
        try:
            yield tmp
            os.chmod(tmp, _mode(folder=True))
            for entry in tmp.iterdir():
                if entry.is_file():
                    os.chmod(entry, _mode(folder=False))
                    _fsync(entry)
            with _signals_deferred():
                _commit_folder(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _commit_folder(tmp: Path, target: Path) -> None:
    new = {p.name for p in tmp.iterdir()}
    if not target.exists():
        os.rename(tmp, target)
        return
    old_entries = list(target.iterdir())
    if all(p.is_file() and not p.is_symlink() and p.name in new for p in old_entries):
        old = target.parent / f"{_prefix(target)}old"
        os.rename(target, old)
        try:
            os.rename(tmp, target)
        except OSError:
            os.rename(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    for name in sorted(new):  # the folder holds other files too: keep them
        os.replace(tmp / name, target / name)
