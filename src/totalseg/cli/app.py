"""Root Typer app, global options and the error policy of the CLI.

Exit codes: 0 ok, 1 user/data error (one line on stderr), 2 usage error, 3 internal error
(traceback only with --debug), 130 interrupted. Sub-command modules import heavy libraries
inside their command functions so that `totalseg --help` starts instantly.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence

import click
import typer

from totalseg import __version__
from totalseg.errors import TotalsegError

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


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _register() -> None:
    from totalseg.cli import (
        convert,
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
    app.command("view")(view.view_command)
    evaluate.register(app)
    train.register(app)
    app.add_typer(info.app, name="info")
    app.add_typer(weights.app, name="weights")
    app.add_typer(phantom.app, name="phantom")
    app.add_typer(study.app, name="study")


_register()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (never raises, except SystemExit from Click)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        rv = app(args=args, prog_name="totalseg", standalone_mode=False)
    except _EXITS as exc:
        return int(exc.exit_code or 0)
    except _ABORTS:
        typer.echo("Aborted.", err=True)
        return 130
    except _CLICK_ERRORS as exc:
        exc.show()  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except TotalsegError as exc:
        if debug:
            traceback.print_exc()
        typer.echo(f"Error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo(
            "Interrupted; finished outputs are kept, nothing half-written is left.", err=True
        )
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
