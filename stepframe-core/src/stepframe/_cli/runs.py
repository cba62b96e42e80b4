"""``stepframe runs``: what ran, how it ended, and where its outputs are.

The commands take the history from ``ctx.obj["history"]``, a zero-argument callable, so the
main CLI alone decides where the project (and so its ``.stepframe/``) is, and tests can point
the commands at any file.  Imports stay to the standard library, click and the history
module so that ``stepframe --help`` does not pay for them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from stepframe.exceptions import StorageFullError, UsageError

if TYPE_CHECKING:
    # Only for annotations: the database module (and sqlite3) loads when a command runs,
    # not when `stepframe` starts.
    from stepframe._history.database import RunHistory, RunRecord

__all__ = ["runs"]

_ERROR_WIDTH = 80


@click.group("runs")
def runs() -> None:
    """Show the runs recorded in this project's run history."""


@runs.command("list")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Show at most this many runs, newest first.",
)
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option(
    "--status",
    type=click.Choice(
        ["running", "succeeded", "failed", "cancelled", "interrupted"], case_sensitive=False
    ),
    default=None,
    help="Only runs that ended (or are) so.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_runs(
    ctx: click.Context, limit: int, pipeline: str | None, status: str | None, as_json: bool
) -> None:
    """List recent runs, newest first."""
    from stepframe._cli.errors import NoRunsYet

    try:
        with _history(ctx) as history:
            records = history.query_runs(
                pipeline=pipeline, status=status.lower() if status else None, limit=limit
            )
            path = history.path
    except NoRunsYet as error:  # a fresh project: an empty listing, not a failure
        records, path = [], None
        empty = error.format_message()
    if as_json:
        click.echo(json.dumps([attrs.asdict(r) for r in records], indent=2))
        return
    if not records:
        wanted = [
            f"{name} {value!r}"
            for name, value in (("pipeline", pipeline), ("status", status))
            if value
        ]
        if path is not None:
            which = f"with {' and '.join(wanted)} " if wanted else ""
            empty = f"no runs {which}recorded yet in {path}"
        click.echo(empty)
        return
    rows = [
        [r.run_id, r.pipeline, r.status, _timestamp(r.started_at), _run_duration(r)]
        for r in records
    ]
    click.echo(_table(["RUN ID", "PIPELINE", "STATUS", "STARTED", "DURATION"], rows))


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--price",
    is_flag=True,
    help="Estimate what each job cost, from what its backend billed and list prices "
    "shipped with its plugin (no network price look-up).",
)
@click.option(
    "--price-table",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='A TOML file of prices per instance-hour in USD ("ml.g5.xlarge" = 1.408) that '
    "win over the plugins' own; implies --price.",
)
@click.pass_context
def show_run(
    ctx: click.Context, run_id: str, as_json: bool, price: bool, price_table: Path | None
) -> None:
    """Show one run, its steps and its artifacts.  RUN_ID may be any unique part of it."""
    prices = _read_price_table(price_table) if price_table is not None else None
    with _history(ctx) as history:
        run = history.get_run(run_id)
        steps = history.get_steps(run.run_id)
        artifacts = history.get_artifacts(run.run_id)
        jobs = history.list_jobs(run_id=run.run_id)
    costs = _job_costs(jobs, prices or {}) if price or prices is not None else None
    if as_json:
        document = {
            "run": attrs.asdict(run),
            "steps": [attrs.asdict(s) for s in steps],
            "artifacts": [attrs.asdict(a) for a in artifacts],
            "jobs": [
                {**attrs.asdict(j, filter=lambda a, _v: a.name not in ("handle", "launch"))}
                for j in jobs
            ],
        }
        if costs is not None:
            document["costs"] = [attrs.asdict(c) for c in costs]
        click.echo(json.dumps(document, indent=2))
        return

    fields = [
        ("run", run.run_id),
        ("pipeline", run.pipeline),
        ("status", run.status),
        ("started", _timestamp(run.started_at)),
        ("duration", _run_duration(run)),
        ("host", f"{run.hostname} (pid {run.pid})"),
        ("project", run.project_root),
    ]
    if run.params:
        fields.append(("params", json.dumps(run.params, sort_keys=True)))
    if run.error:
        fields.append(("error", run.error.rstrip().replace("\n", "\n" + " " * 10)))
    click.echo("\n".join(f"{name:<9} {value}" for name, value in fields))

    click.echo("\nsteps")
    if steps:
        step_rows = [
            [
                s.step,
                s.status,
                s.operator or "-",
                str(s.attempt) if s.attempt else "-",
                s.job_id or "-",
                _duration(s.started_at, s.ended_at),
                _first_line(s.error),
            ]
            for s in steps
        ]
        headers = ["STEP", "STATUS", "OPERATOR", "ATTEMPT", "JOB ID", "DURATION", "ERROR"]
        click.echo(_table(headers, step_rows, indent=2))
    else:
        click.echo("  (none recorded)")

    _show_edges(steps)

    if any(j.attempt > 1 for j in jobs):  # retries and resumes: every attempt's job
        click.echo("\nattempts")
        job_rows = [
            [j.step, str(j.attempt), j.flavor, j.job_id or "-", j.shown_state, j.note or ""]
            for j in jobs
        ]
        headers = ["STEP", "ATTEMPT", "FLAVOR", "JOB ID", "STATE", "NOTE"]
        click.echo(_table(headers, job_rows, indent=2))

    click.echo("\nartifacts")
    if artifacts:
        artifact_rows = [
            [f"{a.step}.{a.output}", a.materializer, _size(a.size), a.sha256[:12], a.uri]
            for a in artifacts
        ]
        headers = ["OUTPUT", "MATERIALIZER", "SIZE", "SHA256", "URI"]
        click.echo(_table(headers, artifact_rows, indent=2))
    else:
        click.echo("  (none recorded)")
    if costs is not None:
        _show_costs(costs)


# ---- cost estimates (issue 13: --price) ---------------------------------------------


class _BadPriceTable(click.ClickException):
    exit_code = 2  # bad input, as for every usage error


@attrs.frozen
class _JobCost:
    """One job's estimate (``amount`` None: none, and ``error`` or ``basis`` says why)."""

    step: str
    attempt: int
    job_id: str
    amount: float | None
    currency: str = "USD"
    basis: str = ""
    prices: str = ""
    error: str | None = None


def _read_price_table(path: Path) -> dict[str, float]:
    """``--price-table``: a flat TOML table of instance type = USD per instance-hour."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the same parser, released on its own before it joined the standard library
        import tomli as tomllib

    fix = 'write one line per instance type: "ml.g5.xlarge" = 1.408 (USD per hour)'
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise _BadPriceTable(f"--price-table {path}: cannot read it ({error.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise _BadPriceTable(f"--price-table {path} is not TOML ({error}); {fix}") from None
    prices = {}
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise _BadPriceTable(f"--price-table {path}: {name} = {value!r} is not a price; {fix}")
        prices[name] = float(value)
    return prices


def _job_costs(jobs: Sequence[Any], prices: dict[str, float]) -> list[_JobCost]:
    """Each accepted job's estimate from its operator's plugin (`estimate_cost`)."""
    from stepframe._cli.jobs import _job_operator
    from stepframe._plugins.manager import get_plugins
    from stepframe.exceptions import StepframeError

    hooks = get_plugins().hooks
    costs = []
    for job in jobs:
        if job.handle is None:
            continue  # never accepted by its backend: nothing billed that we know of
        key = (job.step, job.attempt, job.job_id or "?")
        try:
            credentials = _job_operator(job).credentials
            estimate = hooks.estimate_cost(job.handle, credentials, prices)
        except StepframeError as error:
            costs.append(_JobCost(*key, None, error=_first_line(str(error))))
            continue
        if estimate is None:  # its plugin gives none (a job on this machine bills nothing)
            costs.append(_JobCost(*key, None))
        else:
            costs.append(
                _JobCost(*key, estimate.amount, estimate.currency, estimate.basis, estimate.prices)
            )
    return costs


def _money(amount: float, currency: str) -> str:
    shown = f"{amount:,.2f}" if amount >= 0.01 or amount == 0 else f"{amount:.4f}"
    return f"${shown}" if currency == "USD" else f"{shown} {currency}"


def _show_costs(costs: list[_JobCost]) -> None:
    click.echo("\ncost (estimates from list prices, instances only: not a bill)")
    shown = [c for c in costs if c.amount is not None or c.error is not None]
    silent = len(costs) - len(shown)
    if shown:
        rows = [
            [
                c.step,
                str(c.attempt),
                c.job_id,
                _money(c.amount, c.currency) if c.amount is not None else "-",
                c.basis if c.error is None else f"no estimate: {c.error}",
            ]
            for c in shown
        ]
        totals: dict[str, float] = {}
        for c in shown:
            if c.amount is not None:
                totals[c.currency] = totals.get(c.currency, 0.0) + c.amount
        partial = "of the jobs estimated" if any(c.amount is None for c in shown) else ""
        for currency, total in sorted(totals.items()):
            rows.append(["total", "", "", _money(total, currency), partial])
        click.echo(_table(["STEP", "ATTEMPT", "JOB ID", "ESTIMATE", "HOW"], rows, indent=2))
        for note in dict.fromkeys(c.prices for c in shown if c.prices):
            click.echo(f"  prices: {note}")
    elif not silent:
        click.echo("  (no job was submitted)")
    if silent:
        click.echo(
            f"  no estimate for {'the other ' if shown else ''}{silent} job(s): their "
            "operators' plugins give none (a job on this machine bills nothing)"
        )


def _show_edges(steps: list[Any]) -> None:
    """The run's DAG as recorded (schema 4 on): which output feeds each step's inputs."""
    edges = [(s.step, e) for s in steps for e in s.upstream or ()]
    if not edges:
        return
    click.echo("\nupstream")
    rows = [[step, edge.input, f"{edge.from_step}.{edge.output}"] for step, edge in edges]
    click.echo(_table(["STEP", "INPUT", "FROM"], rows, indent=2))


@contextmanager
def _history(ctx: click.Context) -> Iterator[RunHistory]:
    """Open the project's history and turn its usage errors (and a full disk under it) into
    click's exit-1 errors."""
    obj: Any = ctx.obj
    if not isinstance(obj, dict) or "history" not in obj:
        raise click.ClickException(
            "no run history configured: run these commands through `stepframe runs`"
        )
    try:
        with obj["history"]() as history:
            yield history
    except (UsageError, StorageFullError) as error:
        raise click.ClickException(str(error)) from error


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: int = 0) -> str:
    """Left-aligned columns two spaces apart, sized to their widest cell."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = []
    for row in [headers, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths))
        lines.append((" " * indent + "  ".join(cells)).rstrip())
    return "\n".join(lines)


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _run_duration(run: RunRecord) -> str:
    if run.ended_at is None and run.status == "running":
        return f"{_seconds(time.time() - run.started_at)} so far"
    return _duration(run.started_at, run.ended_at)


def _duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "-"
    return _seconds(end - start)


def _seconds(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"


def _first_line(text: str | None) -> str:
    """The line that says what went wrong: the message, not the traceback around it.

    Errors are stored as the message followed by the remote traceback; a bare traceback
    puts its message last instead.
    """
    if not text:
        return ""
    lines = text.strip().splitlines()
    line = lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]
    return line if len(line) <= _ERROR_WIDTH else line[: _ERROR_WIDTH - 3] + "..."
