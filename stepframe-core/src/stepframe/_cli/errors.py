"""How commands report failure: one message, no traceback, a meaningful exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "reports_errors"]

_F = TypeVar("_F", bound=Callable[..., Any])

# Exit codes: 1 a step or the run failed, 2 the input was wrong, 130 interrupted.
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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
            click.echo(f"stepframe: error: {error}", err=True)
            sys.exit(EXIT_USAGE)
        except StepframeError as error:
            click.echo(f"stepframe: error: {error}", err=True)
            sys.exit(EXIT_FAILED)
        except Exception as error:
            # A full disk met where no caller knew better what was being written.
            message = _storage_message(error)
            if message is None:
                raise
            click.echo(f"stepframe: error: {message}", err=True)
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
