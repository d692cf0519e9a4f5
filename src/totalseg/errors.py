"""Exception hierarchy.

The library raises; the CLI reports. Every error class also subclasses a built-in exception so
callers can catch it the way they would catch the built-in. Messages follow the pattern
"expected ..., got ... (where); what to do".
"""

from __future__ import annotations


class TotalsegError(Exception):
    """Base class of every error totalseg raises on purpose."""


class InputError(TotalsegError, ValueError):
    """An input image, label map or folder is not what was expected (user/data error)."""


class ImageFileError(InputError, OSError):
    """A file cannot be read or written as an image (missing, corrupt, truncated, wrong format)."""


class OutputError(InputError, OSError):
    """An output cannot be written where asked (permission, full disk, a file in the way, or it
    would replace an input); nothing half-written is left."""


class InterruptedRun(TotalsegError):
    """A run was stopped by SIGINT/SIGTERM; finished outputs are kept, nothing partial is left."""


class DicomError(InputError):
    """A DICOM folder or archive is not one complete, consistent CT series."""


class GeometryError(InputError):
    """Two images do not share a grid, or an affine is unusable."""


class UnknownStructureError(TotalsegError, KeyError):
    """A structure (class) name is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(TotalsegError, ValueError):
    """A configuration value or file (plans.json, dataset.json, options) is invalid."""


class ModelError(TotalsegError, RuntimeError):
    """A model folder or checkpoint cannot be used."""


class WeightsNotFoundError(ModelError, FileNotFoundError):
    """The weights of a model are not installed."""


class UnsafeCheckpointError(ModelError):
    """A checkpoint holds objects outside the allow-list (refused: unpickling could run code)."""


class DownloadError(TotalsegError, OSError):
    """A download failed, was truncated, or did not match its pinned sha256."""


class MissingDependencyError(TotalsegError, ImportError):
    """An optional dependency (an extra such as `totalseg[study]`) is not installed."""
