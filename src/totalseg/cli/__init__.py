"""The `totalseg` command line. Thin: parse -> config -> one library call -> render."""

from __future__ import annotations

import sys

from totalseg.cli.help import tidy_flag_metavars

tidy_flag_metavars()

from totalseg.cli.app import main  # noqa: E402  (after the help tidying it relies on)

__all__ = ["main", "run"]


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
