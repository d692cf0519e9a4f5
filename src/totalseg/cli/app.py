"""Root Typer app, global options and the error policy of the CLI.

Exit codes: 0 ok, 1 user/data error (one line on stderr), 2 usage error, 3 internal error
(traceback only with --debug), 130 interrupted. Sub-command modules import heavy libraries
inside their command functions so that `totalseg --help` starts instantly.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

import click
import typer

from totalseg import __version__
from totalseg.errors import InterruptedRun, TotalsegError

# Typer vendors its own copy of Click; catch the exceptions of both.
_CLICK_ERRORS: tuple[type[Exception], ...] = tuple(
    {click.ClickException}
    | {c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"}
)
_EXITS = (click.exceptions.Exit, typer.Exit)
_ABORTS = (click.exceptions.Abort, typer.Abort)

app = typer.Typer(
    name="totalseg",
    help=(
        "Whole-body CT segmentation (104/117 structures, TotalSegmentator-compatible), "
        "training, paper-grade evaluation and population studies.\n\n"
        "Start with: totalseg info classes, or totalseg --help on any command."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"totalseg {__version__}")
        raise typer.Exit()


#: flags of the one logging setup, accepted anywhere on the command line (before or after the
#: sub-command): -q errors only, -v totalseg's INFO, --debug everything (libraries included)
#: plus tracebacks
LOG_FLAGS = {"-q": "quiet", "--quiet": "quiet", "-v": "verbose", "--verbose": "verbose",
             "--debug": "debug"}  # fmt: skip
#: third-party loggers kept at WARNING unless --debug (pylibjpeg alone logs a line per frame)
QUIET_LIBRARIES = (
    "pylibjpeg", "pydicom", "dask", "distributed", "bokeh", "tornado", "asyncio", "fsspec",
    "PIL", "matplotlib", "numba", "urllib3", "highdicom", "nnunetv2", "h5py", "duckdb",
)  # fmt: skip


def split_log_flags(args: Sequence[str]) -> tuple[list[str], str | None]:
    """The arguments without the logging flags, and the loudest level asked for."""
    rest: list[str] = []
    levels: set[str] = set()
    for i, arg in enumerate(args):
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in LOG_FLAGS:
            levels.add(LOG_FLAGS[arg])
        else:
            rest.append(arg)
    level = next((lv for lv in ("debug", "verbose", "quiet") if lv in levels), None)
    return rest, level


def _optional_values() -> dict[str, str]:
    from totalseg.options import DEFAULT_MIN_BLOB_MM3

    return {"--remove-small-blobs": f"{DEFAULT_MIN_BLOB_MM3:g}"}


def fill_optional_values(args: Sequence[str]) -> list[str]:
    """Options whose value may be left out (the reference's `--remove_small_blobs [MM3]`):
    their default is inserted when no number follows (Typer has no optional values)."""
    defaults = _optional_values()
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        out.append(arg)
        if arg in defaults and not _is_number(args[i + 1] if i + 1 < len(args) else ""):
            out.append(defaults[arg])
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def quiet() -> bool:
    """True under -q: commands then draw no progress bar (errors only on stderr)."""
    return logging.getLogger("totalseg").getEffectiveLevel() >= logging.ERROR


def setup_logging(level: str | None) -> None:
    """One logging setup for every command: totalseg's own loggers at WARNING (ERROR with -q,
    INFO with -v, DEBUG with --debug) on stderr; third-party libraries at WARNING unless
    --debug (Dask's worker processes too, through its config environment variable)."""
    own = {"quiet": logging.ERROR, "verbose": logging.INFO, "debug": logging.DEBUG}.get(
        level or "", logging.WARNING
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_totalseg", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._totalseg = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    logging.getLogger("totalseg").setLevel(own)
    library_level = logging.DEBUG if level == "debug" else logging.WARNING
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
    if level != "debug":
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


@app.callback(epilog="-q/--quiet, -v/--verbose and --debug work before or after any sub-command.")
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Log everything (libraries too) and show tracebacks for errors."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log errors only."),
) -> None:
    """(Logging is set up in `main`, where these flags are taken from anywhere in argv.)"""


def _register() -> None:
    from totalseg.cli import (
        combine,
        convert,
        crop,
        evaluate,
        info,
        phantom,
        segment,
        stats,
        study,
        train,
        view,
        weights,
    )

    app.command("segment")(segment.segment_command)
    app.command("convert")(convert.convert_command)
    app.command("stats")(stats.stats)
    app.command("combine")(combine.combine_command)
    app.command("crop-to-body")(crop.crop_to_body_command)
    app.command("view")(view.view_command)
    evaluate.register(app)
    train.register(app)
    app.add_typer(info.app, name="info")
    app.add_typer(weights.app, name="weights")
    app.add_typer(phantom.app, name="phantom")
    app.add_typer(study.app, name="study")


_register()


_INTERRUPTED = "Interrupted; finished outputs are kept, nothing half-written is left."


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _sigterm_interrupts() -> Any:
    """SIGTERM (e.g. `kill`, a job scheduler) stops a command like Ctrl-C: same cleanup, same
    message, exit 130. Returns the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (never raises, except SystemExit from Click)."""
    args, level = split_log_flags(list(sys.argv[1:] if argv is None else argv))
    args = fill_optional_values(args)
    debug = level == "debug"
    setup_logging(level)
    previous = _sigterm_interrupts()
    try:
        return _run(args, debug=debug)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: list[str], *, debug: bool) -> int:
    try:
        rv = app(args=args, prog_name="totalseg", standalone_mode=False)
    except _EXITS as exc:
        code = int(exc.exit_code or 0)
        if code == 130 and isinstance(exc.__cause__, KeyboardInterrupt):  # Typer's Ctrl-C
            typer.echo(_INTERRUPTED, err=True)
        return code
    except _ABORTS:
        typer.echo("Aborted.", err=True)
        return 130
    except _CLICK_ERRORS as exc:
        exc.show()  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except InterruptedRun as exc:
        typer.echo(str(exc), err=True)
        return 130
    except TotalsegError as exc:
        if debug:
            traceback.print_exc()
        typer.echo(f"Error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo(_INTERRUPTED, err=True)
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        typer.echo(
            f"Internal error: {type(exc).__name__}: {exc}. Rerun with --debug and report it.",
            err=True,
        )
        return 3
    return rv if isinstance(rv, int) else 0
