"""Safe loading of nnU-Net checkpoints (no arbitrary code execution).

A checkpoint is a pickle. Plain `torch.load(weights_only=False)` would run whatever callable the
file names, so we use torch's restricted unpickler (`weights_only=True`): tensors, plain
containers and `torch.device` are allowed by torch itself, and we add the few numpy globals
real nnU-Net checkpoints hold (numpy scalars in `logging` / `_best_ema`, their dtypes, and
plain numpy arrays). Any other global is refused with `UnsafeCheckpointError` naming it.
"""

from __future__ import annotations

import logging
import pickle
import pickletools
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from totalseg.errors import ModelError, UnsafeCheckpointError, WeightsNotFoundError

log = logging.getLogger(__name__)

_GLOBAL_RE = re.compile(r"GLOBAL (\S+?) (?:was not an allowed global|whose module)")
# Refusals of the restricted unpickler that are about object types, not about a broken file.
_TYPE_REFUSALS = ("Can only create new object", "Can only build", "unrecognized function")


def _numpy_safe_globals() -> list[Any]:
    """(object, pickled name) pairs of the numpy globals a checkpoint may reference."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]

    pairs: list[Any] = []
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        pairs.append((multiarray.scalar, f"{module}.scalar"))
        pairs.append((multiarray._reconstruct, f"{module}._reconstruct"))
    pairs += [(np.dtype, "numpy.dtype"), (np.ndarray, "numpy.ndarray")]
    # dtype instances are rebuilt through BUILD, which checks the instance's class
    # (numpy >= 1.25: numpy.dtypes.Float64DType etc.); allow the plain numeric/bool ones.
    dtypes = getattr(np, "dtypes", None)
    for name in getattr(dtypes, "__all__", ()):
        cls = getattr(dtypes, name)
        kind = getattr(cls, "type", None)
        if isinstance(kind, type) and issubclass(kind, (np.number, np.bool_)):
            pairs.append((cls, f"numpy.dtypes.{name}"))
    return pairs


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file onto the CPU with the restricted unpickler.

    Raises WeightsNotFoundError (missing file), UnsafeCheckpointError (a global outside the
    allow-list; nothing from the file is executed) or ModelError (truncated/corrupt file).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"Expected a checkpoint file, got no file at '{path}'; import or download the "
            "weights (`totalseg weights import ZIP` / `totalseg weights download TASK`)."
        )
    _check_archive(path)
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_numpy_safe_globals()):
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        forbidden = _forbidden_globals(path, str(exc))
        if forbidden:
            raise UnsafeCheckpointError(
                f"Refusing to load checkpoint '{path}': it references the forbidden global "
                f"{', '.join(forbidden)} (only tensors, plain containers and numpy scalars are "
                "allowed, since unpickling anything else could run code). Use the official "
                "weights or re-export the checkpoint's tensors with torch.save."
            ) from None
        raise _corrupt(path, exc) from exc
    except Exception as exc:  # truncated zip, bad magic, EOF, ...: all mean "corrupt file"
        raise _corrupt(path, exc) from exc
    if not isinstance(obj, dict):
        raise ModelError(
            f"Expected a checkpoint dict, got {type(obj).__name__} in '{path}'; "
            "re-download or re-import the weights."
        )
    return obj


def _check_archive(path: Path) -> None:
    """A zip-format checkpoint's central directory is checked (sizes, ratio) before torch
    inflates anything of it."""
    from totalseg.io.archive import GuardedZip, is_zip

    if is_zip(path):
        GuardedZip(path, error=ModelError).__exit__()


def _allowed_global_names() -> set[str]:
    names = {name for _, name in _numpy_safe_globals()}
    try:  # torch's own allow-list (tensors, dtypes, OrderedDict, torch.device, ...)
        from torch._weights_only_unpickler import _get_allowed_globals

        names |= set(_get_allowed_globals())
    except ImportError:  # pragma: no cover - private API moved; fall back to prefixes
        pass
    return names


def _forbidden_globals(path: Path, message: str) -> list[str]:
    """Names of the globals the file references outside the allow-list (empty: none found)."""
    match = _GLOBAL_RE.search(message)
    if match:
        return [match.group(1)]
    allowed = _allowed_global_names()
    found = [g for g in _scan_globals(path) if g not in allowed and not g.startswith("torch.")]
    if not found and any(marker in message for marker in _TYPE_REFUSALS):
        return ["(an object type outside the allow-list)"]
    return list(dict.fromkeys(found))


def _pickle_streams(path: Path) -> list[bytes]:
    from totalseg.io.archive import GuardedZip, is_zip

    if is_zip(path):
        with GuardedZip(path, error=ModelError) as zf:
            return [zf.read(i) for i in zf.members if i.filename.endswith("data.pkl")]
    return [path.read_bytes()]


def _scan_globals(path: Path) -> list[str]:
    """Every `module.name` global a pickle references, found without unpickling anything."""
    out: list[str] = []
    try:
        streams = _pickle_streams(path)
    except (OSError, ModelError):
        return out
    for data in streams:
        strings: list[Any] = []
        memo: dict[int, Any] = {}
        try:
            for op, arg, _pos in pickletools.genops(data):
                if op.name == "GLOBAL":
                    out.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    out.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str) and "UNICODE" in op.name:
                    strings.append(arg)
                elif op.name == "MEMOIZE" and strings:
                    memo[len(memo)] = strings[-1]
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                    memo[int(str(arg))] = strings[-1]
                elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(str(arg)) in memo:
                    strings.append(memo[int(str(arg))])
        except ValueError:  # truncated or not a pickle: keep what was found
            continue
    return out


def _corrupt(path: Path, exc: BaseException) -> ModelError:
    text = str(exc).strip()
    first = text.splitlines()[-1] if text else type(exc).__name__
    first = first.split(". ")[0][:160]
    return ModelError(
        f"'{path}' is not a readable checkpoint ({type(exc).__name__}: {first}); "
        "re-download or re-import the weights."
    )
