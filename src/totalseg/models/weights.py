"""The weights home: installing (import / pinned download), listing and finding model folders.

Torch-free. Home = `$TOTALSEG_HOME` or `platformdirs.user_data_dir("totalseg")`; model folders
live at `<home>/weights/<DatasetXXX_name>/<trainer>__<plans>__<configuration>/` (the reference
tool's layout, so its release zips install unchanged).

Safety: archives are checked before anything is extracted (no absolute names, no `..`, no
symlinks); extraction and download go to temporary entries inside the weights folder and only
complete, validated model folders are renamed into place. Downloads are pinned by sha256 and
length-checked; a failed download leaves neither a temp file nor an installed folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from totalseg.errors import ConfigError, DownloadError, ModelError, WeightsNotFoundError
from totalseg.models.download import Progress, fetch_verified, sha256_file
from totalseg.models.plan import read_dataset_json
from totalseg.models.tasks import WeightsEntry, get_task, list_tasks, weights_entry

log = logging.getLogger(__name__)

_DATASET_RE = re.compile(r"^Dataset(\d{3,})_[^/\\]+$")
_V1_MARKERS = ("plans.pkl", "model_final_checkpoint.model")
_CHUNK_BYTES = 1 << 20

__all__ = [
    "InstalledModel",
    "download_weights",
    "find_model_folder",
    "import_weights",
    "list_installed",
    "replace_dir",
    "sha256_file",
    "weights_dir",
    "weights_home",
]


@dataclass(frozen=True)
class InstalledModel:
    """One installed model folder."""

    dataset_id: int
    dataset_folder: str
    model: str
    path: Path
    folds: tuple[str, ...]
    size_bytes: int


def weights_home(home: str | Path | None = None) -> Path:
    """The totalseg home folder: `home`, else `$TOTALSEG_HOME`, else the platform data dir."""
    if home is not None:
        return Path(home)
    env = os.environ.get("TOTALSEG_HOME")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("totalseg"))


def weights_dir(home: str | Path | None = None) -> Path:
    """`<home>/weights`, where model folders are installed."""
    return weights_home(home) / "weights"


def _is_model_folder(path: Path) -> bool:
    return (path / "plans.json").is_file() and (path / "dataset.json").is_file()


def _fold_names(path: Path) -> tuple[str, ...]:
    folds = [p.name for p in path.glob("fold_*") if (p / "checkpoint_final.pth").is_file()]
    digits = sorted((n for n in folds if n[5:].isdigit()), key=lambda n: int(n[5:]))
    return tuple(digits + sorted(n for n in folds if not n[5:].isdigit()))


def list_installed(home: str | Path | None = None) -> list[InstalledModel]:
    """Every model folder installed in the weights home, by dataset id then name."""
    root = weights_dir(home)
    out = []
    for ds in sorted(root.iterdir()) if root.is_dir() else ():
        match = _DATASET_RE.match(ds.name)
        if not match or not ds.is_dir():
            continue
        for model in sorted(ds.iterdir()):
            if model.is_dir() and _is_model_folder(model):
                size = sum(f.stat().st_size for f in model.rglob("*") if f.is_file())
                out.append(
                    InstalledModel(
                        int(match.group(1)), ds.name, model.name, model, _fold_names(model), size
                    )
                )
    return sorted(out, key=lambda m: (m.dataset_id, m.dataset_folder, m.model))


def _tasks_of(dataset_id: int) -> list[str]:
    return [t.name for t in list_tasks() if dataset_id in t.datasets]


def _missing_message(dataset_id: int, root: Path, detail: str = "") -> str:
    tasks = _tasks_of(dataset_id)
    try:
        entry: WeightsEntry | None = weights_entry(dataset_id)
    except ConfigError:
        entry = None
    name = f"dataset {dataset_id}" + (f" ({entry.folder})" if entry else "")
    how = f"`totalseg weights import {entry.folder + '.zip' if entry else 'ZIP_OR_DIR'}`"
    if tasks:
        how = f"`totalseg weights download {tasks[0]}` or " + how
    return (
        f"The weights of {name} are not installed in '{root}'{detail}; run {how} "
        "(set TOTALSEG_HOME to use another home folder)."
    )


def bundled_model_folder(entry: WeightsEntry) -> Path:
    """The model folder shipped inside the package for a `bundled` entry, its checkpoint
    checked against the pinned sha256."""
    from importlib import resources

    folder = Path(str(resources.files("totalseg.models").joinpath("data"))) / entry.relpath
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    if not checkpoint.is_file() or not (folder / "dataset.json").is_file():
        raise WeightsNotFoundError(
            f"Expected the model shipped with totalseg for dataset {entry.dataset_id} in "
            f"'{folder}', found none; reinstall totalseg (`python -m pip install -e .`)."
        )
    if entry.sha256 is not None and sha256_file(checkpoint) != entry.sha256:
        raise WeightsNotFoundError(
            f"Expected the shipped checkpoint '{checkpoint}' to have sha256 {entry.sha256}, "
            "found a different file; reinstall totalseg."
        )
    return folder


def find_model_folder(dataset_id: int, *, home: str | Path | None = None) -> Path:
    """The installed model folder of a dataset id (the official trainer's one if several);
    models shipped in the package (format `bundled`) need no home folder."""
    try:
        entry = weights_entry(dataset_id)
    except ConfigError:
        entry = None
    if entry is not None and entry.format == "bundled":
        return bundled_model_folder(entry)
    root = weights_dir(home)
    candidates = [m for m in list_installed(home) if m.dataset_id == dataset_id and m.folds]
    if not candidates:
        raise WeightsNotFoundError(_missing_message(dataset_id, root))
    try:
        official = weights_entry(dataset_id)
    except ConfigError:
        official = None
    for m in candidates:
        if official and (m.dataset_folder, m.model) == (official.folder, official.model):
            return m.path
    if len(candidates) == 1:
        return candidates[0].path
    raise WeightsNotFoundError(
        f"Expected one model folder for dataset {dataset_id} in '{root}', got "
        f"{[str(PurePosixPath(m.dataset_folder) / m.model) for m in candidates]}; pass the one "
        "you want with --model-dir."
    )


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if "\\" in name or ".." in parts:
        return "path traversal"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return None


def _extract_zip(archive: Path, dest: Path) -> None:
    """Check every member first, then extract regular files and directories into `dest`."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                reason = _unsafe_member(info)
                if reason:
                    raise ModelError(
                        f"Refusing archive '{archive}': member {info.filename!r} is an unsafe "
                        f"{reason}; use the official release zip."
                    )
            needed = sum(i.file_size for i in infos)
            free = shutil.disk_usage(dest).free
            if needed > free:
                raise ModelError(
                    f"Expected {needed / 1e9:.1f} GB free to extract '{archive}', got "
                    f"{free / 1e9:.1f} GB in '{dest}'; free disk space or set TOTALSEG_HOME."
                )
            for info in infos:
                target = dest.joinpath(*PurePosixPath(info.filename).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK_BYTES)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ModelError(
            f"'{archive}' is not a readable zip archive ({exc}); re-download it."
        ) from None


def _validate_model_folder(path: Path, rel: PurePosixPath) -> None:
    problems = [n for n in ("dataset.json", "plans.json") if not (path / n).is_file()]
    if not _fold_names(path):
        problems.append("fold_*/checkpoint_final.pth")
    if problems:
        raise ModelError(
            f"Incomplete model folder '{rel}': missing {', '.join(problems)}; use a complete "
            "nnU-Net v2 model folder (dataset.json, plans.json, fold_N/checkpoint_final.pth)."
        )
    for name in ("dataset.json", "plans.json"):
        try:
            data = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"'{rel / name}' is not readable JSON ({exc}).") from None
        if name == "dataset.json":
            read_dataset_json(data, where=f"'{rel / name}'")


def _find_model_folders(tree: Path, source: Path) -> list[PurePosixPath]:
    """Model folders (`DatasetXXX_*/<model>/` with plans.json) in an extracted/copied tree."""
    found = []
    for plans in sorted(tree.rglob("plans.json")):
        model = plans.parent
        if _DATASET_RE.match(model.parent.name) and (model / "dataset.json").is_file():
            found.append(PurePosixPath(model.relative_to(tree).as_posix()))
    if not found:
        v1 = [p for m in _V1_MARKERS for p in tree.rglob(m)]
        if v1:
            raise ModelError(
                f"'{source}' holds an nnU-Net v1 model (found {v1[0].name}); v1 model folders are "
                "not supported yet; use the v2 weights (`totalseg weights download total`)."
            )
        raise ModelError(
            f"Expected DatasetXXX_name/<trainer>__<plans>__<config>/ with plans.json and "
            f"dataset.json in '{source}', got none; pass an official weights zip or its folder."
        )
    return found


def replace_dir(new: Path, dest: Path) -> None:
    """Rename `new` to `dest`; an existing `dest` is swapped out first and removed after."""
    old = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        dest.rename(old)
    try:
        new.rename(dest)
    except OSError:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _install_tree(
    tree: Path, root: Path, source: Path, *, overwrite: bool, expect: PurePosixPath | None
) -> list[Path]:
    rels = _find_model_folders(tree, source)
    installs = {rel: PurePosixPath(*rel.parts[-2:]) for rel in rels}
    if expect is not None and expect not in installs.values():
        raise ModelError(
            f"Expected the archive to hold '{expect}', got {sorted(map(str, installs.values()))} "
            f"('{source}'); check the URL."
        )
    for rel, dest_rel in installs.items():
        _validate_model_folder(tree / rel, rel)
        if (root / dest_rel).exists() and not overwrite:
            raise ModelError(
                f"'{root / dest_rel}' is already installed; pass --force (overwrite=True) to "
                "replace it."
            )
    out = []
    for rel, dest_rel in installs.items():
        (root / dest_rel).parent.mkdir(parents=True, exist_ok=True)
        replace_dir(tree / rel, root / dest_rel)
        out.append(root / dest_rel)
        log.info("installed %s", root / dest_rel)
    return out


def import_weights(
    source: str | Path,
    *,
    home: str | Path | None = None,
    overwrite: bool = False,
    expect: PurePosixPath | None = None,
) -> list[Path]:
    """Install model folders from a release zip or a directory; returns the installed folders.

    The source must contain `DatasetXXX_name/<trainer>__<plans>__<config>/` folders (at any
    depth) with dataset.json, plans.json and fold_N/checkpoint_final.pth.
    """
    source = Path(source)
    if not source.exists():
        raise WeightsNotFoundError(f"Expected a weights zip or folder at '{source}', got nothing.")
    root = weights_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    tree = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    try:
        if source.is_dir():
            for rel in _find_model_folders(source, source):
                model = (source / rel).resolve()  # rel may be "." (source is a model folder)
                shutil.copytree(model, tree / model.parent.name / model.name)
        elif zipfile.is_zipfile(source):
            _extract_zip(source, tree)
        else:
            raise ModelError(f"Expected a .zip archive or a folder, got '{source}'.")
        return _install_tree(tree, root, source, overwrite=overwrite, expect=expect)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _entries(task: str) -> list[WeightsEntry]:
    if task.isdigit():
        return [weights_entry(int(task))]
    return [weights_entry(d) for d in get_task(task).datasets]


def download_weights(
    task: str,
    *,
    home: str | Path | None = None,
    expected_sha256: str | None = None,
    url: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    timeout_s: float = 60.0,
) -> list[Path]:
    """Download and install the weights of a task (or one dataset id such as "291").

    Every archive is verified against its pinned sha256 (`expected_sha256` overrides the pin
    and is required where the pin is unknown) and its Content-Length before it is imported.
    Already installed folders are kept unless `overwrite`.
    """
    entries = _entries(task)
    if (expected_sha256 or url) and len(entries) != 1:
        ids = ", ".join(str(e.dataset_id) for e in entries)
        raise ConfigError(
            f"--sha256/--url apply to one archive, but task {task!r} has {len(entries)} "
            f"({ids}); download them one at a time by dataset id."
        )
    root = weights_dir(home)
    out = []
    for entry in entries:
        if entry.format == "bundled":  # shipped in the package: nothing to download
            out.append(bundled_model_folder(entry))
            continue
        target = root / entry.relpath
        if target.is_dir() and not overwrite:
            log.info("already installed: %s", target)
            out.append(target)
            continue
        if entry.format != "nnunet_v2":
            raise ModelError(
                f"Dataset {entry.dataset_id} ({entry.folder}) is an nnU-Net v1 model; v1 model "
                "folders are not supported yet."
            )
        sha = _check_sha(expected_sha256 or entry.sha256, entry)
        root.mkdir(parents=True, exist_ok=True)
        archive = fetch_verified(
            url or entry.url, root, sha, progress=progress, timeout_s=timeout_s
        )
        try:
            out += import_weights(archive, home=home, overwrite=overwrite, expect=entry.relpath)
        finally:
            archive.unlink(missing_ok=True)
    return out


def _check_sha(sha: str | None, entry: WeightsEntry) -> str:
    if sha is None:
        raise DownloadError(
            f"The sha256 of {entry.folder}.zip is not pinned in this totalseg version, so the "
            "download cannot be verified; pass --sha256 HEX with the hash you trust, or "
            f"download {entry.url} yourself and run `totalseg weights import ZIP`."
        )
    sha = sha.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ConfigError(f"Expected a sha256 of 64 hex digits, got {sha!r}.")
    return sha
