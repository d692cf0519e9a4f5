"""The `totalseg` command line. Thin: parse -> config -> one library call -> render."""

from __future__ import annotations

import sys

from totalseg.cli.app import main

__all__ = ["main", "run"]


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
