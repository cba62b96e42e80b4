"""The ``stepframe`` command.

Only click is imported at start-up; each command imports what it needs, so
``stepframe --help`` answers without loading plugins or the orchestrator.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from stepframe._cli.runs import runs

__all__ = ["cli", "main"]

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

    return wrapper  # type: ignore[return-value]


def _history_factory() -> Any:
    from stepframe._history.database import RunHistory
    from stepframe._project import Project

    project = Project.discover()
    if not project.database_path.exists():
        raise click.ClickException(
            f"no runs recorded in {project.root} yet (looked for {project.database_path}); "
            "run a pipeline first with `stepframe run FILE`"
        )
    return RunHistory(project.database_path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stepframe-core", prog_name="stepframe")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run each step of a Python pipeline on the compute it needs."""
    ctx.ensure_object(dict)
    ctx.obj.setdefault("history", _history_factory)


@cli.command()
@click.argument("target", metavar="FILE[:PIPELINE]")
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=None,
    help="How many steps may run at once (default: 4 per CPU core, at most 32).",
)
@reports_errors
def run(target: str, max_parallel: int | None) -> None:
    """Run a pipeline defined in a Python file.

    FILE is a Python file with a @pipeline function; add :NAME when it has several.
    """
    from stepframe._orchestrator.run import run_pipeline
    from stepframe._pipeline.loader import load_pipeline

    pipeline = load_pipeline(target)
    run_pipeline(pipeline.compile(), max_parallel=max_parallel)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins: distribution, version, hooks and flavors."""
    import attrs

    from stepframe._plugins.manager import get_plugins

    infos = get_plugins().describe()
    if as_json:
        click.echo(json.dumps([attrs.asdict(info) for info in infos], indent=2))
        return
    for info in infos:
        version = f" {info.version}" if info.version else ""
        click.echo(f"{info.name}  ({info.distribution or 'registered directly'}{version})")
        click.echo(f"  module:  {info.module}")
        click.echo(f"  hooks:   {', '.join(info.hooks) or '-'}")
        click.echo(f"  flavors: {', '.join(info.flavors) or '-'}")


cli.add_command(runs)


def main() -> None:
    cli(prog_name="stepframe")
