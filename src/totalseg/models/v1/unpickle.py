"""Safe reading of nnU-Net 1 pickles: `plans.pkl` and `model_final_checkpoint.model.pkl`.

Both are plain pickles (nnU-Net 1's `save_pickle`/`write_pickle`) of dicts holding lists, tuples,
strings, numbers, numpy arrays, numpy scalars and dtypes, and `OrderedDict`s. A plain
`pickle.load` would call whatever global the file names, so `read_v1_pickle` uses an unpickler
whose `find_class` returns only the globals on an allow-list; any other global is refused with
`UnsafeCheckpointError` naming it, before anything from the file is called. Files written with
numpy 1.x name `numpy.core.*`, files written with numpy 2 name `numpy._core.*`: both are allowed.
The torch checkpoint `model_final_checkpoint.model` itself is read by
`totalseg.models.checkpoint.load_checkpoint` (torch's restricted unpickler, same numpy globals).
Torch-free.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from totalseg.errors import ModelError, UnsafeCheckpointError, WeightsNotFoundError

__all__ = ["allowed_globals", "loads_v1_pickle", "read_v1_pickle"]


def _numpy_modules() -> tuple[Any, Any]:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    return multiarray, numeric


def allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> object of every global a v1 pickle may reference."""
    multiarray, numeric = _numpy_modules()
    out: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    for core in ("numpy.core", "numpy._core"):
        out[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        out[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        out[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    dtypes = getattr(np, "dtypes", None)
    for name in getattr(dtypes, "__all__", ()):
        cls = getattr(dtypes, name)
        kind = getattr(cls, "type", None)
        if isinstance(kind, type) and issubclass(kind, (np.number, np.bool_)):
            out[("numpy.dtypes", name)] = cls
    return out


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, where: str) -> None:
        super().__init__(file)
        self._where = where
        self._allowed = allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is None:
            raise UnsafeCheckpointError(
                f"Refusing to read '{self._where}': it references the forbidden global "
                f"{module}.{name} (only numpy arrays/scalars/dtypes, OrderedDict and plain "
                "containers are allowed, since unpickling anything else could run code). Use "
                "the official nnU-Net 1 model folder."
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(
            f"Refusing to read '{self._where}': it holds persistent ids (a torch file?), which a "
            "plain nnU-Net 1 pickle does not; use the official nnU-Net 1 model folder."
        )


def loads_v1_pickle(data: bytes, *, where: str = "pickle") -> Any:
    """Unpickle bytes with the allow-list (see the module doc)."""
    try:
        return _AllowListUnpickler(io.BytesIO(data), where).load()
    except UnsafeCheckpointError:
        raise
    except Exception as exc:  # truncated, not a pickle, wrong numpy layout: a corrupt file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelError(
            f"'{where}' is not a readable nnU-Net 1 pickle ({type(exc).__name__}: {first}); "
            "re-download or re-import the model folder."
        ) from None


def read_v1_pickle(path: str | Path) -> Any:
    """Read `plans.pkl` or `model_final_checkpoint.model.pkl` without running code from it."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"Expected the nnU-Net 1 file '{path}', got none; re-import the model folder "
            "(`totalseg weights import ZIP_OR_DIR`)."
        )
    return loads_v1_pickle(path.read_bytes(), where=str(path))
