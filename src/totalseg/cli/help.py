"""Help-screen tidying shared by every command.

Typer 0.29 prints a type column for every option, `<bool>` for plain on/off flags too (which
take no value). `tidy_flag_metavars()` drops the type of flags; values keep theirs.
"""

from __future__ import annotations

from typing import Any

import typer.core

__all__ = ["tidy_flag_metavars"]

_ORIGINAL = typer.core.TyperOption.display_type_rich


def _display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
    if self.is_flag and self.metavar is None:
        return None
    return _ORIGINAL(self, ctx)


def tidy_flag_metavars() -> None:
    """Flags (`--ml`, `--json`, ...) show no `<bool>` in any help screen."""
    typer.core.TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]
