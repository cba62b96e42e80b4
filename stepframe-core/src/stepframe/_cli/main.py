"""The ``stepframe`` command.

Only click is imported at start-up; each command imports what it needs, so
``stepframe --help`` answers without loading plugins or the orchestrator.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from stepframe._cli.components import component_groups
from stepframe._cli.errors import NoRunsYet, reports_errors
from stepframe._cli.jobs import jobs
from stepframe._cli.plugin_commands import PluginCommandGroup
from stepframe._cli.runs import runs
from stepframe._cli.secrets import secret
from stepframe._cli.stacks import flavor, stack
from stepframe._types import ComponentKind

if TYPE_CHECKING:
    from stepframe._history.database import RunHistory

__all__ = ["cli", "main"]


def _history_factory() -> RunHistory:
    from stepframe._history.database import RunHistory
    from stepframe._project import Project

    project = Project.discover()
    if not project.database_path.exists():
        raise NoRunsYet(
            f"no runs recorded in {project.root} yet (looked for {project.database_path}); "
            "run a pipeline first with `stepframe run FILE`"
        )
    return RunHistory(project.database_path)


def _run_config(path: Path) -> dict[str, Any]:
    """A run config file: ``[settings.FLAVOR]`` for every step, ``[steps.NAME.settings.FLAVOR]``
    for one."""
    from stepframe.exceptions import ConfigError

    if not path.is_file():
        raise ConfigError(f"run config {path} does not exist")
    data = _parse_run_config(path)
    unknown = sorted(set(data) - {"settings", "steps", "parameters"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; {_RUN_CONFIG_SHAPE}")
    steps: dict[str, Any] = {}
    for step, table in data.get("steps", {}).items():
        extra = sorted(set(table) - {"settings"})
        if extra:
            raise ConfigError(f"{path}: steps.{step}: unknown key(s) {', '.join(extra)}")
        steps[step] = table.get("settings", {})
    return {**data.get("settings", {}), "steps": steps}


_RUN_CONFIG_SHAPE = (
    "a run config holds [parameters], [settings.FLAVOR] and [steps.STEP.settings.FLAVOR] tables"
)


def _parse_run_config(path: Path) -> dict[str, Any]:
    """The run config's TOML; a syntax error names the file, line and column, and what a
    run config holds (it is the user's file: stepframe never edits it)."""
    import re

    from stepframe.exceptions import ConfigError

    text = path.read_text(encoding="utf-8")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the same parser, released on its own before it joined the standard library
        import tomli as tomllib

    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        where, reason = "", str(error)
    else:
        return data
    # The parser ends its message with the position: "(at line 3, column 7)" or
    # "(at end of document)".
    found = re.search(r"\(?at line (\d+),? col(?:umn)? (\d+)\)?$", reason)
    if found:
        where = where or f"{found.group(1)}:{found.group(2)}"
        reason = reason[: found.start()].rstrip()
    elif reason.endswith("(at end of document)"):
        where = f"{text.count(chr(10)) + 1}:1"
        reason = reason.removesuffix("(at end of document)").rstrip() + " at the end of the file"
    raise ConfigError(
        f"{path}:{where}: invalid TOML in this run config: {reason}; fix it there "
        f"({_RUN_CONFIG_SHAPE})"
    )


@click.group(
    cls=PluginCommandGroup,  # StepframeGroup, plus the commands plugins add (issue 12)
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="stepframe-core", prog_name="stepframe")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run each step of a Python pipeline on the compute it needs."""
    ctx.ensure_object(dict)
    ctx.obj.setdefault("history", _history_factory)


@cli.command()
@click.argument("target", metavar="FILE[:PIPELINE]", required=False)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=None,
    help="How many steps may run at once (default: 4 per CPU core, at most 32).",
)
@click.option("--stack", "stack_name", default=None, help="Run on this stack, not the active one.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="A run config (TOML) whose settings override the pipeline's and the steps'.",
)
@click.option("--no-cache", is_flag=True, help="Run every step, even unchanged ones.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check every step with its plugins (the pre-flight), print the DAG, each step's "
    "operator, settings and whether it would come from the cache; run nothing.",
)
@click.option(
    "--resume", "resume", metavar="RUN_ID", default=None, help="Continue an interrupted run."
)
@click.option(
    "-p",
    "--param",
    "params",
    metavar="NAME=VALUE",
    multiple=True,
    help="A pipeline parameter, converted by the pipeline function's type hint "
    "(repeat for several; they override a run config's [parameters]).",
)
@reports_errors
def run(
    target: str | None,
    max_parallel: int | None,
    stack_name: str | None,
    config_path: Path | None,
    no_cache: bool,
    dry_run: bool,
    resume: str | None,
    params: tuple[str, ...],
) -> None:
    """Run a pipeline defined in a Python file.

    FILE is a Python file with a @pipeline function; add :NAME when it has several.
    With --resume, FILE defaults to the one the run started from.
    """
    from stepframe._orchestrator.run import plan_rows, run_pipeline
    from stepframe._pipeline.loader import load_pipeline, split_target
    from stepframe.exceptions import UsageError

    if target is None:
        if resume is None:
            raise UsageError("give the pipeline file to run: stepframe run FILE[:PIPELINE]")
        target = _source_of(resume)
    run_settings = _run_config(config_path) if config_path else None
    pipeline = load_pipeline(target)
    spec = pipeline.compile(**_parameters(pipeline, config_path, params, resume))
    if dry_run:
        _print_dry_run(
            spec.name,
            plan_rows(spec, stack=stack_name, run_settings=run_settings, use_cache=not no_cache),
        )
        return
    run_pipeline(
        spec,
        stack=stack_name,
        max_parallel=max_parallel,
        run_settings=run_settings,
        use_cache=not no_cache,
        resume=resume,
        source=_absolute(*split_target(target)),
    )


def _parameters(
    pipeline: Any, config_path: Path | None, given: tuple[str, ...], resume: str | None
) -> dict[str, Any]:
    """The pipeline's parameters: a run config's ``[parameters]``, then ``-p`` options; on
    ``--resume`` without either, the parameters the run started with."""
    from stepframe._pipeline.parameters import parameters_from_config, parameters_from_shell

    values: dict[str, Any] = {}
    if config_path is not None:
        table = _parse_run_config(config_path).get("parameters", {})
        values.update(parameters_from_config(pipeline.func, pipeline.name, table, str(config_path)))
    values.update(parameters_from_shell(pipeline.func, pipeline.name, given))
    if resume is not None and not values:
        history = _history_factory()
        try:
            recorded = history.get_run(resume).params
        finally:
            history.close()
        where = f"run {resume}'s recorded parameters"
        values = parameters_from_config(pipeline.func, pipeline.name, recorded, where)
    return values


def _print_dry_run(pipeline: str, rows: list[dict[str, Any]]) -> None:
    """The plan a dry run checked: per step its operator, the DAG edges into it, its
    settings and what it would do about the cache (on stdout, one block per step)."""
    stack = rows[0]["stack"] if rows else "?"
    click.echo(
        f"stepframe: pre-flight passed: pipeline {pipeline!r}, {len(rows)} "
        f"step{'' if len(rows) == 1 else 's'}, "
        f"stack {stack!r}; nothing was run",
        err=True,
    )
    for row in rows:
        click.echo(f"{row['step']}: operator {row['operator']} (flavor {row['flavor']})")
        for edge in row["edges"]:
            click.echo(f"    input {edge['input']} <- {edge['from']}.{edge['output']}")
        for key, values in row["settings"].items():
            click.echo(f"    settings.{key} = {json.dumps(values, sort_keys=True, default=str)}")
        click.echo(f"    cache: {row['cache']}")


def _absolute(path: Path, name: str | None) -> str:
    """The target as an absolute path, so ``--resume`` works from any directory."""
    return f"{path.resolve()}:{name}" if name else str(path.resolve())


def _source_of(run_id: str) -> str:
    from stepframe.exceptions import UsageError

    history = _history_factory()
    record = history.get_run(run_id)
    history.close()
    if not record.source:
        raise UsageError(
            f"run {record.run_id} was not started from a file; give it: "
            f"stepframe run FILE --resume {run_id}"
        )
    return record.source


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


@flavor.command(name="describe")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in ComponentKind]),
    default=None,
    help="The component kind, when several kinds have a flavor of that name.",
)
@reports_errors
def flavor_describe(name: str, kind: str | None) -> None:
    """Show a flavor's config and settings fields and the plugin that provides it."""
    from stepframe._plugins.describe import describe_flavor
    from stepframe._plugins.manager import get_plugins
    from stepframe.exceptions import UsageError

    plugins = get_plugins()
    found = [
        (entry, plugin)
        for entry, plugin in plugins.flavors.of_kind(ComponentKind(kind) if kind else None)
        if entry.name == name
    ]
    if not found:
        known = sorted({entry.name for entry, _ in plugins.flavors.of_kind()})
        raise UsageError(
            f"no installed plugin provides a flavor named {name!r}; "
            f"{plugins.flavors.install_hint(name)} (flavors: {', '.join(known)})"
        )
    blocks = []
    for entry, plugin in found:
        info = plugins.infos.get(plugin)
        blocks.append(describe_flavor(entry, plugin, info.distribution if info else None))
    click.echo("\n\n".join(blocks))


for _group in (*component_groups(), stack, flavor, secret, jobs, runs):
    cli.add_command(_group)

# Issue 14: step logs, the run report, the web view and clean-up (runs delete|prune, gc).
from stepframe._cli.gc import delete_runs, gc, prune_runs  # noqa: E402
from stepframe._cli.logs import logs  # noqa: E402
from stepframe._cli.report import report  # noqa: E402
from stepframe._cli.ui import ui  # noqa: E402

for _command in (report, ui, gc, logs):
    cli.add_command(_command)
runs.add_command(delete_runs)
runs.add_command(prune_runs)


def main() -> None:
    cli(prog_name="stepframe")
