"""How commands report failure: one message, no traceback, a meaningful exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = [
    "ERROR_PREFIX",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "NoRunsYet",
    "StepframeGroup",
    "reports_errors",
]

_F = TypeVar("_F", bound=Callable[..., Any])

# Exit codes: 1 a step or the run failed, 2 the input was wrong, 130 interrupted.
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# What every error line starts with, stepframe's own and click's (usage errors) alike.
ERROR_PREFIX = "stepframe: error: "


class NoRunsYet(click.ClickException):
    """The project has no run history yet: an error for commands that need a run, and
    an empty listing for those that list."""


class StepframeGroup(click.Group):
    """The ``stepframe`` command: click's own errors (a usage error, a missing argument,
    an unknown command) are shown as stepframe's are, on one line after `ERROR_PREFIX`,
    followed by the usage and where to find help."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as error:
            show_click_error(error)
            sys.exit(error.exit_code)
        except click.exceptions.Abort:
            click.echo("stepframe: aborted", err=True)
            sys.exit(EXIT_FAILED)
        # Not standalone, click returns an `Exit`'s code (--help, --version) or what the
        # command returned (nothing).
        sys.exit(result if isinstance(result, int) else 0)


def show_click_error(error: click.ClickException) -> None:
    """One ``stepframe: error:`` line; a usage error adds the usage and the help hint."""
    no_args_is_help = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2
    if isinstance(error, no_args_is_help):
        error.show()  # a group called without a command: its help, which is no error
        return
    lines = [ERROR_PREFIX + error.format_message()]
    ctx = error.ctx if isinstance(error, click.UsageError) else None
    if ctx is not None:
        lines.append(ctx.get_usage())
        if ctx.command.get_help_option(ctx) is not None:
            lines.append(f"Try '{ctx.command_path} --help' for help.")
    click.echo("\n".join(lines), err=True)


def reports_errors(func: _F) -> _F:
    """Print stepframe's own errors as one message, without a Python traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from stepframe.exceptions import RunCancelled, RunFailed, StepframeError, UsageError

        try:
            return func(*args, **kwargs)
        except RunCancelled:
            sys.exit(EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            # Ctrl-C before a run started (while the pipeline file imports, say):
            # nothing to cancel, and no traceback to show.
            click.echo("stepframe: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except RunFailed:
            sys.exit(EXIT_FAILED)  # the run's summary already showed what failed
        except UsageError as error:
            click.echo(f"{ERROR_PREFIX}{error}", err=True)
            sys.exit(EXIT_USAGE)
        except StepframeError as error:
            click.echo(f"{ERROR_PREFIX}{error}", err=True)
            sys.exit(EXIT_FAILED)
        except Exception as error:
            # A full disk met where no caller knew better what was being written.
            message = _storage_message(error)
            if message is None:
                raise
            click.echo(f"{ERROR_PREFIX}{message}", err=True)
            sys.exit(EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


def _storage_message(error: Exception) -> str | None:
    """One line for an error that says the disk is full or failing, else None."""
    import sqlite3

    from stepframe._storage import is_storage_oserror, storage_reason

    if isinstance(error, OSError):
        if not is_storage_oserror(error):
            return None
        where = f" {error.filename}" if error.filename else ""
        return f"cannot write{where}: {storage_reason(error)}; free space on that disk and retry"
    if not isinstance(error, sqlite3.Error):
        return None
    if "disk is full" in str(error) or "disk I/O error" in str(error):
        return f"the run history cannot be written: {error}; free space on that disk and retry"
    return None
