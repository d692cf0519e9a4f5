"""The id space a model is trained in: which structures, with which label values.

A class spec is one of
- ``"v1"`` / ``"v2"``: the paper's 104 classes / the current 117, with their global ids;
- ``"part:NNN"``: one part of the five-part 1.5 mm split (v1 251-255, v2 291-295), local ids;
- a list of structure names (or a comma-separated string), ids 1..n in the given order
  (named subsets such as ``btcv13`` expand).

Every id space is contiguous (1..n), as nnU-Net requires of its labels.
"""

from __future__ import annotations

from collections.abc import Sequence

from totalseg.anatomy import class_map, part_maps, resolve_names
from totalseg.errors import ConfigError

__all__ = ["describe_class_spec", "resolve_classes"]


def _part_classes(text: str) -> dict[int, str]:
    raw = text.split(":", 1)[1].strip()
    try:
        dataset_id = int(raw)
    except ValueError:
        raise ConfigError(
            f"Expected a part like 'part:291' (an integer dataset id), got {text!r}."
        ) from None
    for version in ("v1", "v2"):
        parts = part_maps(version)
        if dataset_id in parts:
            return dict(parts[dataset_id])
    known = sorted([*part_maps("v1"), *part_maps("v2")])
    raise ConfigError(
        f"Expected a part dataset id among {known}, got {dataset_id} in {text!r}; "
        "v1 parts are 251-255, v2 parts 291-295."
    )


def resolve_classes(spec: str | Sequence[str]) -> dict[int, str]:
    """The {label id: structure name} map of a class spec (see the module docstring)."""
    if isinstance(spec, str):
        text = spec.strip()
        if text in ("v1", "v2"):
            return dict(class_map(text))
        if text.startswith("part:"):
            return _part_classes(text)
        names: list[str] = [n.strip() for n in text.split(",") if n.strip()]
    else:
        names = [str(n).strip() for n in spec if str(n).strip()]
    if not names:
        raise ConfigError(
            f"Expected classes 'v1', 'v2', 'part:291' or structure names, got {spec!r}."
        )
    return {i + 1: n for i, n in enumerate(resolve_names(names))}


def describe_class_spec(spec: str | Sequence[str]) -> str:
    """A short human label for logs and dataset names, e.g. 'v1' or '3 structures'."""
    if isinstance(spec, str) and (spec in ("v1", "v2") or spec.startswith("part:")):
        return spec
    return f"{len(resolve_classes(spec))} structures"
