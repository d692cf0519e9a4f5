"""The weights home: installing (import / pinned download), listing and finding model folders.

Torch-free. Home = `$TOTALSEG_HOME` or `platformdirs.user_data_dir("totalseg")`; model folders
live at `<home>/weights/<DatasetXXX_name>/<trainer>__<plans>__<configuration>/` (the reference
tool's layout, so its release zips install unchanged).

Model folders are also found, read-only and in place, in the reference tool's own weights
folder (`~/.totalsegmentator/nnunet/results`, see `models.external`), and the demo model ships in
the package. Downloading the official archives (sha256 lock, pins, first-use download) is in
`models.release`.

Safety: archives are checked before anything is extracted (no absolute names, no `..`, no
symlinks); extraction and download go to temporary entries inside the weights folder and only
complete, validated model folders are renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from totalseg.errors import ConfigError, ModelError, WeightsNotFoundError
from totalseg.models.download import sha256_file
from totalseg.models.external import totalsegmentator_weights_dir
from totalseg.models.plan import read_dataset_json
from totalseg.models.tasks import WeightsEntry, list_tasks, weights_entry
from totalseg.models.v1.layout import is_v1_model_folder, v1_fold_names, validate_v1_model_folder

log = logging.getLogger(__name__)

# nnU-Net 2 `DatasetXXX_name`, nnU-Net 1 `TaskXXX_name` (TotalSegmentator 1.x, see models.v1)
_DATASET_RE = re.compile(r"^(?:Dataset|Task)(\d{3,})_[^/\\]+$")
_CHUNK_BYTES = 1 << 20

__all__ = [
    "InstalledModel",
    "find_model_folder",
    "import_weights",
    "list_available",
    "list_installed",
    "replace_dir",
    "resolve_model_dir",
    "sha256_file",
    "weights_dir",
    "weights_home",
]

#: where a model folder comes from: totalseg's home, the reference tool's weights folder (used
#: in place, read-only), or the package itself (the demo model)
ModelSource = Literal["totalseg", "TotalSegmentator", "shipped"]


@dataclass(frozen=True)
class InstalledModel:
    """One installed model folder."""

    dataset_id: int
    dataset_folder: str
    model: str
    path: Path
    folds: tuple[str, ...]
    size_bytes: int
    source: ModelSource = "totalseg"


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
    v2 = (path / "plans.json").is_file() and (path / "dataset.json").is_file()
    return v2 or is_v1_model_folder(path)


def _fold_names(path: Path) -> tuple[str, ...]:
    if is_v1_model_folder(path):
        return v1_fold_names(path)
    folds = [p.name for p in path.glob("fold_*") if (p / "checkpoint_final.pth").is_file()]
    digits = sorted((n for n in folds if n[5:].isdigit()), key=lambda n: int(n[5:]))
    return tuple(digits + sorted(n for n in folds if not n[5:].isdigit()))


def list_installed(home: str | Path | None = None) -> list[InstalledModel]:
    """Every model folder installed in the weights home, by dataset id then name."""
    return _list_root(weights_dir(home), "totalseg")


def list_available(home: str | Path | None = None) -> list[InstalledModel]:
    """Every model folder totalseg can run without a download: the models shipped in the
    package, those in the weights home, and those of a TotalSegmentator install (in place)."""
    from totalseg.models.tasks import list_weights

    shipped = []
    for entry in list_weights():
        if entry.format == "bundled":
            path = bundled_model_folder(entry)
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shipped.append(
                InstalledModel(
                    entry.dataset_id, entry.folder, entry.model, path, _fold_names(path), size,
                    "shipped",
                )
            )  # fmt: skip
    external = totalsegmentator_weights_dir()
    theirs = []
    if external != weights_dir(home):
        theirs = _list_root(external, "TotalSegmentator") + _list_root(
            _v1_root(), "TotalSegmentator"
        )
    return shipped + list_installed(home) + theirs


def _v1_root() -> Path:
    """Where TotalSegmentator 1.x installed its nnU-Net 1 weights (Task251-256)."""
    return totalsegmentator_weights_dir() / "nnUNet" / "3d_fullres"


def _list_root(root: Path, source: ModelSource) -> list[InstalledModel]:
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
                        int(match.group(1)), ds.name, model.name, model, _fold_names(model), size,
                        source,
                    )
                )  # fmt: skip
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
    """The installed model folder of a dataset id (the official trainer's one if several):
    shipped in the package (format `bundled`), else in the weights home, else in the reference
    tool's weights folder (used in place)."""
    try:
        official: WeightsEntry | None = weights_entry(dataset_id)
    except ConfigError:
        official = None
    if official is not None and official.format == "bundled":
        return bundled_model_folder(official)
    root = weights_dir(home)
    external = totalsegmentator_weights_dir()
    places: tuple[tuple[Path, ModelSource], ...] = (
        (root, "totalseg"),
        (external, "TotalSegmentator"),
        (_v1_root(), "TotalSegmentator"),
    )
    for place, source in places:
        candidates = [m for m in _list_root(place, source) if m.dataset_id == dataset_id]
        usable = [m for m in candidates if m.folds]
        for m in usable:
            if official and (m.dataset_folder, m.model) == (official.folder, official.model):
                return m.path
        if len(usable) == 1:
            return usable[0].path
        if len(usable) > 1:
            raise WeightsNotFoundError(
                f"Expected one model folder for dataset {dataset_id} in '{place}', got "
                f"{[str(PurePosixPath(m.dataset_folder) / m.model) for m in usable]}; pass the "
                "one you want with --model-dir."
            )
        if candidates:
            log.warning("ignoring %s: no fold_N/checkpoint_final.pth inside", candidates[0].path)
    detail = f" nor in TotalSegmentator's '{external}'" if external != root else ""
    raise WeightsNotFoundError(_missing_message(dataset_id, root, detail))


def resolve_model_dir(path: str | Path) -> Path:
    """A model folder given by the user: the folder itself when it holds plans.json, else the
    single `<trainer>__<plans>__<config>` folder inside it (as the reference tool finds the
    trainer folder inside a `DatasetXXX_name` folder)."""
    path = Path(path)
    if (path / "plans.json").is_file() or is_v1_model_folder(path) or not path.is_dir():
        return path
    inside = sorted(p for p in path.iterdir() if p.is_dir() and _is_model_folder(p))
    if len(inside) == 1:
        log.info("using the model folder %s inside %s", inside[0].name, path)
        return inside[0]
    if len(inside) > 1:
        raise ModelError(
            f"Expected one model folder (with plans.json) inside '{path}', got "
            f"{[p.name for p in inside]}; pass the one you want with --model-dir."
        )
    return path


def _extract_zip(archive: Path, dest: Path) -> None:
    """Check every member (names, sizes, ratio: `io.archive`), then extract into `dest`."""
    from totalseg.io.archive import GuardedZip

    with GuardedZip(archive, error=ModelError) as zf:
        zf.extract_all(dest)


def _validate_model_folder(path: Path, rel: PurePosixPath) -> None:
    if is_v1_model_folder(path):
        validate_v1_model_folder(path, rel)
        return
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
    """Model folders in an extracted/copied tree: `DatasetXXX_*/<model>/` with plans.json, or
    nnU-Net 1's `TaskXXX_*/<trainer>__<plans>/` with plans.pkl (v1 release zips)."""
    found = []
    plans = [*tree.rglob("plans.json"), *tree.rglob("plans.pkl")]
    for model in sorted({p.parent for p in plans}):
        if _DATASET_RE.match(model.parent.name) and _is_model_folder(model):
            found.append(PurePosixPath(model.relative_to(tree).as_posix()))
    if not found:
        raise ModelError(
            f"Expected DatasetXXX_name/<trainer>__<plans>__<config>/ with plans.json and "
            f"dataset.json (or nnU-Net 1's TaskXXX_name/<trainer>__<plans>/ with plans.pkl) in "
            f"'{source}', got none; pass an official weights zip or its folder."
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
    if old is not None and old.is_symlink():  # a linked install: drop the link, not its target
        old.unlink()
    elif old is not None:
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
    link: bool = False,
) -> list[Path]:
    """Install model folders from a release zip or a directory; returns the installed folders.

    The source must contain `DatasetXXX_name/<trainer>__<plans>__<config>/` folders (at any
    depth) with dataset.json, plans.json and fold_N/checkpoint_final.pth, or nnU-Net 1's
    `TaskXXX_name/<trainer>__<plans>/` with plans.pkl and fold_N/model_final_checkpoint.model
    (+ .pkl), as in TotalSegmentator 1.x's release zips (plans.pkl read with the allow-list
    unpickler before anything is installed). With `link`, a
    directory's model folders are checked the same way and linked (symlinks), not copied: for
    weights that stay where another tool installed them.
    """
    from totalseg.io.archive import is_zip

    source = Path(source)
    if not source.exists():
        raise WeightsNotFoundError(f"Expected a weights zip or folder at '{source}', got nothing.")
    root = weights_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    if link:
        return _link_tree(source, root, overwrite=overwrite)
    tree = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    try:
        if source.is_dir():
            for rel in _find_model_folders(source, source):
                model = (source / rel).resolve()  # rel may be "." (source is a model folder)
                shutil.copytree(model, tree / model.parent.name / model.name)
        elif is_zip(source):
            _extract_zip(source, tree)
        else:
            raise ModelError(f"Expected a .zip archive or a folder, got '{source}'.")
        return _install_tree(tree, root, source, overwrite=overwrite, expect=expect)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _link_tree(source: Path, root: Path, *, overwrite: bool) -> list[Path]:
    if not source.is_dir():
        raise ModelError(f"Expected a folder to link model folders from, got '{source}'.")
    out = []
    rels = _find_model_folders(source, source)
    for rel in rels:
        _validate_model_folder(source / rel, rel)
    for rel in rels:
        model = (source / rel).resolve()
        dest = root / model.parent.name / model.name
        if dest.exists() and not overwrite:
            raise ModelError(
                f"'{dest}' is already installed; pass --force (overwrite=True) to replace it."
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".link-{uuid.uuid4().hex[:8]}"
        tmp.symlink_to(model, target_is_directory=True)
        replace_dir(tmp, dest)
        log.info("linked %s -> %s", dest, model)
        out.append(dest)
    return out
