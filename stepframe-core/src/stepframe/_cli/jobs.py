"""``stepframe jobs list|stop|attach``: the ledger of every job ever submitted."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from stepframe._cli.errors import reports_errors

if TYPE_CHECKING:
    from stepframe._orchestrator.job_operator import JobOperator

__all__ = ["jobs"]

# How long `jobs stop` waits for a job to confirm it stopped.
STOP_WAIT_SECONDS = 10.0


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _find(history: Any, job: str) -> Any:
    """A ledger row by backend job id, or by ledger row number."""
    from stepframe.exceptions import UsageError

    rows = history.list_jobs()
    matches = [row for row in rows if row.job_id == job] or [
        row for row in rows if job.isdigit() and row.id == int(job)
    ]
    if not matches:
        raise UsageError(f"no job {job!r} in the ledger; see `stepframe jobs list`")
    row = matches[-1]
    if row.handle is None:
        raise UsageError(
            f"job {job!r} was never confirmed as submitted (ledger row {row.id}, state "
            f"{row.state}); check the {row.flavor} backend for it by hand"
        )
    return row


def _job_operator(row: Any) -> JobOperator:
    """The operator that submitted the job of ledger row ``row``, with credentials through
    its connector: the lookup `run --resume` makes too (`stepframe._orchestrator.job_operator`).

    :raises ConfigError: that operator is registered nowhere, or is now of another flavor.
    """
    from stepframe._cli.components import config_path
    from stepframe._orchestrator.job_operator import job_operator
    from stepframe._plugins.manager import get_plugins

    return job_operator(
        row.operator,
        row.flavor,
        job=f"{row.flavor} job {row.job_id or '?'} (ledger row {row.id}, step {row.step!r} "
        f"of run {row.run_id})",
        plugins=get_plugins(),
        config=config_path(),
    )


def _settle_lost_submits(history: Any, rows: list[Any]) -> bool:
    """Ask the operators about jobs whose submit answer was lost and whose run is no longer
    being run (a live orchestrator settles its own); True if any row changed.

    A job nobody could find before (``unknown``) is asked about again, as ``run --resume``
    does: the backend may answer now.
    """
    from stepframe._history.database import POSSIBLY_SUBMITTED, SUBMITTING, UNKNOWN

    lost = [
        row
        for row in rows
        if row.handle is None
        and row.state in (SUBMITTING, POSSIBLY_SUBMITTED, UNKNOWN)
        and row.launch is not None
        and history.get_run(row.run_id).status != "running"
    ]
    if not lost:
        return False
    from stepframe._orchestrator.reconcile import launch_from_record, settle
    from stepframe._plugins.manager import get_plugins
    from stepframe.exceptions import ConfigError

    plugins = get_plugins()
    for row in lost:
        try:
            submitter = _job_operator(row)
        except ConfigError as error:
            # Nobody can ask about the job now: it stays listed, and the note says why.
            history.update_job_state(row.id, UNKNOWN, note=f"{error}")
            continue
        launch = launch_from_record(row.launch, row.flavor, plugins.flavors)
        settle(history, plugins.hooks, row, launch, submitter.component, submitter.credentials)
    return True


@click.group(help="Every job stepframe submitted: list them, stop one, follow one.")
def jobs() -> None:
    pass


@jobs.command(name="list", help="List jobs, newest first: run, step, flavor, id, state, timing.")
@click.option("--running", is_flag=True, help="Only jobs that may still be running.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Show at most this many jobs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@reports_errors
def list_(ctx: click.Context, running: bool, limit: int, as_json: bool) -> None:
    from stepframe._cli.errors import NoRunsYet

    try:
        history = ctx.obj["history"]()
    except NoRunsYet:  # a fresh project: an empty listing, not a failure
        rows = []
    else:
        rows = history.list_jobs(running_only=running)
        if _settle_lost_submits(history, rows):
            rows = history.list_jobs(running_only=running)
    rows = rows[::-1][:limit]  # the ledger is oldest first
    if as_json:
        click.echo(json.dumps([_job_json(row) for row in rows], indent=2))
        return
    if not rows:
        click.echo("no running jobs" if running else "no jobs recorded")
        return
    header = ("RUN", "STEP", "FLAVOR", "JOB ID", "STATE", "STARTED", "DURATION")
    table = [header]
    for row in rows:
        end = time.time() if row.is_active else row.updated_at
        table.append(
            (
                row.run_id,
                row.step,
                row.flavor,
                row.job_id or "-",
                row.shown_state,
                _when(row.created_at),
                f"{end - row.created_at:.1f}s",
            )
        )
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for r in table:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(r, widths)).rstrip())
    for row in rows:
        if row.note and row.is_active:  # why nobody can say more about a job that may run
            click.echo(f"ledger row {row.id} ({row.step} of run {row.run_id}): {row.note}")


def _job_json(row: Any) -> dict[str, Any]:
    """A ledger row for ``--json``: what the table shows and more, not the launch record
    (credentials are never in it, but it is the plugins' business)."""
    return {
        "id": row.id,
        "run_id": row.run_id,
        "step": row.step,
        "attempt": row.attempt,
        "flavor": row.flavor,
        "operator": row.operator,
        "job_id": row.job_id,
        "state": row.state,
        "timed_out_after": row.timed_out_after,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "image_digest": row.image_digest,
        "region": row.region,
        "note": row.note,
    }


@jobs.command(help="Stop a running job through its operator (cancel_step).")
@click.argument("job")
@click.pass_context
@reports_errors
def stop(ctx: click.Context, job: str) -> None:
    from stepframe._plugins.manager import get_plugins
    from stepframe._types import JobState

    history = ctx.obj["history"]()
    row = _find(history, job)
    what = f"{row.flavor} job {row.job_id} (step {row.step} of run {row.run_id})"
    if not row.is_active:
        click.echo(f"job {row.job_id} already ended ({row.state})")
        return
    hooks = get_plugins().hooks
    credentials = _job_operator(row).credentials
    # The ledger may be behind (nobody followed the job): ask the backend first.
    status = hooks.poll_step(row.handle, credentials, None)
    if status.state.is_terminal:
        history.update_job_state(row.id, status.state)
        click.echo(f"job {row.job_id} already ended ({status.state.value})")
        return
    hooks.cancel_step(row.handle, credentials)
    # Wait (briefly) for the backend to confirm, so the ledger says what happened; an
    # operator may also be stopping the job from this process (a thread that sends
    # SIGKILL after a grace period), which must not be cut short by exiting.
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    cursor = status.cursor
    while time.monotonic() < deadline:
        status = hooks.poll_step(row.handle, credentials, cursor)
        cursor = status.cursor
        if status.state is JobState.SUCCEEDED:
            # It finished its work when asked to stop: its result stands, and a resumed
            # run takes it instead of running the step again.
            history.update_job_state(row.id, status.state)
            click.echo(f"{what} succeeded before it stopped")
            return
        if status.state.is_terminal:
            history.update_job_state(row.id, JobState.CANCELLED)
            click.echo(f"stopped {what}")
            return
        time.sleep(min(status.poll_after or 0.5, 1.0))
    click.echo(
        f"asked {what} to stop; it has not stopped yet (`stepframe jobs list` shows it "
        "until it does)"
    )


@jobs.command(help="Follow a job's state and logs until it ends (Ctrl-C stops following).")
@click.argument("job")
@click.pass_context
@reports_errors
def attach(ctx: click.Context, job: str) -> None:
    from stepframe._orchestrator.follow import follow_job
    from stepframe._plugins.manager import get_plugins

    history = ctx.obj["history"]()
    row = _find(history, job)
    credentials = _job_operator(row).credentials
    click.echo(f"following {row.flavor} job {row.job_id} (step {row.step} of run {row.run_id})")

    def show(lines: tuple[str, ...]) -> None:
        for line in lines:
            click.echo(f"{row.step} | {line}")

    try:
        status = follow_job(
            get_plugins().hooks,
            row.handle,
            credentials=lambda: credentials.fresh() if credentials else None,
            on_lines=show,
            on_detail=lambda detail: click.echo(f"[{row.step}] {detail}"),
        )
    except KeyboardInterrupt:
        click.echo(
            "\nstopped following; the job goes on "
            f"(stop it with `stepframe jobs stop {row.job_id}`)"
        )
        raise SystemExit(130) from None
    history.update_job_state(row.id, status.state)
    reason = f": {status.failure_reason}" if status.failure_reason else ""
    click.echo(f"job {row.job_id} {status.state.value}{reason}")
