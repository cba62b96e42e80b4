"""``stepframe logs RUN [STEP]``: the logs the orchestrator kept, and a running step's live.

The logs are the files `stepframe._logs` writes (found through `step_log_path`, as `Runs`
and the report find them).  ``--follow`` streams a running step: through its operator's
log cursor (``poll_step``, as ``stepframe jobs attach`` does) when its job outlives the
orchestrator (``local``, containers, remote jobs, which can be followed from any shell,
even once the run's process is gone), else from the file the orchestrator writes (an
in-process step lives in the orchestrator's own process).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from stepframe._cli.errors import reports_errors

if TYPE_CHECKING:
    from stepframe._history.database import JobRecord, RunHistory, RunRecord

__all__ = ["logs"]

# How often --follow looks at a log file and the step's state.
TAIL_POLL_SECONDS = 0.2
# Step states after which its log grows no more.
_ENDED = ("succeeded", "failed", "skipped", "cancelled", "cached")


@click.command(
    help="Print the log kept for each step of a run, or for one STEP; RUN may be any "
    "unique part of the run id."
)
@click.argument("run_id", metavar="RUN")
@click.argument("step", required=False)
@click.option(
    "-f", "--follow", is_flag=True, help="Stream the step's log while it runs, until it ends."
)
@click.option(
    "--attempt",
    type=click.IntRange(min=1),
    default=None,
    help="This attempt's log (default: the latest).",
)
@click.option("--no-timestamps", is_flag=True, help="Leave out the time each line was received.")
@click.pass_context
@reports_errors
def logs(
    ctx: click.Context,
    run_id: str,
    step: str | None,
    follow: bool,
    attempt: int | None,
    no_timestamps: bool,
) -> None:
    from stepframe.exceptions import UsageError

    history = ctx.obj["history"]()
    try:
        run = history.get_run(run_id)
        steps = [record.step for record in history.get_steps(run.run_id)]
        if step is not None and step not in steps:
            raise UsageError(
                f"run {run.run_id} has no step {step!r}; its steps: {', '.join(steps) or 'none'}"
            )
        show = _printer(no_timestamps, None)
        if follow:
            if step is None:
                raise UsageError(
                    f"name the step to follow: stepframe logs {run_id} STEP --follow "
                    f"(steps: {', '.join(steps) or 'none'})"
                )
            _follow(history, run, step, show)
            return
        if step is not None:
            _print_step(history, run, step, attempt, show, alone=True)
            return
        for name in steps:
            _print_step(history, run, name, attempt, _printer(no_timestamps, name), alone=False)
    finally:
        history.close()


def _printer(no_timestamps: bool, prefix: str | None) -> Any:
    """How one stored line is shown: with or without its time, after ``STEP | ``."""
    from stepframe._logs import split_timestamp

    def show(line: str) -> None:
        stamp, text = split_timestamp(line)
        if prefix:
            text = f"{prefix} | {text}"
        click.echo(text if no_timestamps or not stamp else f"{stamp} {text}")

    return show


def _project(history: RunHistory) -> Any:
    """The project whose state folder holds this history (and so the logs)."""
    from stepframe._project import Project

    return Project(Path(history.path).parent.parent)


def _latest_job(history: RunHistory, run: RunRecord, step: str, attempt: int | None) -> Any:
    jobs = [job for job in history.list_jobs(run_id=run.run_id) if job.step == step]
    if attempt is not None:
        jobs = [job for job in jobs if job.attempt == attempt]
        if not jobs:
            from stepframe.exceptions import UsageError

            raise UsageError(f"step {step!r} of run {run.run_id} has no attempt {attempt}")
    return max(jobs, key=lambda job: (job.attempt, job.id), default=None)


def _print_step(
    history: RunHistory,
    run: RunRecord,
    step: str,
    attempt: int | None,
    show: Any,
    *,
    alone: bool,
) -> None:
    from stepframe._client.logs import step_log_path
    from stepframe.exceptions import StepframeError

    job = _latest_job(history, run, step, attempt)
    path = step_log_path(_project(history), run.run_id, step, job)
    if path is None:
        if not alone:
            return  # a cached or skipped step among others: nothing to show for it
        status = next(s.status for s in history.get_steps(run.run_id) if s.step == step)
        why = {
            "cached": "it was taken from the cache; the run that ran it kept the log",
            "pending": "it has not started",
            "skipped": "it never ran",
        }.get(status, f"none was kept here (the step is {status})")
        raise StepframeError(f"no log for step {step!r} of run {run.run_id}: {why}")
    with open(path, encoding="utf-8", errors="replace") as stream:
        for line in stream:
            show(line.rstrip("\n"))


def _follow(history: RunHistory, run: RunRecord, step: str, show: Any) -> None:
    """Stream a step's log until it ends (Ctrl-C stops following, not the step)."""
    try:
        job = _latest_job(history, run, step, None)
        if job is not None and job.is_active and job.handle is not None and _outlives(job):
            _follow_job(job, show)
        else:
            _tail(history, run, step, show)
    except KeyboardInterrupt:
        click.echo("\nstopped following; the step goes on", err=True)
        raise SystemExit(130) from None


def _outlives(job: JobRecord) -> bool:
    """Whether the job's operator can be asked about it from another process."""
    from stepframe._plugins.manager import get_plugins
    from stepframe._types import ComponentKind

    flavor = get_plugins().flavors.get(ComponentKind.STEP_OPERATOR, job.flavor)
    return flavor is not None and flavor.jobs_outlive_client


def _follow_job(job: JobRecord, show: Any) -> None:
    """Through the operator's log cursor, from the job's first line to its end."""
    from stepframe._cli.jobs import _job_operator
    from stepframe._logs import timestamp
    from stepframe._orchestrator.follow import follow_job
    from stepframe._plugins.manager import get_plugins

    assert job.handle is not None
    credentials = _job_operator(job).credentials  # the ledger row's operator's

    def lines(batch: tuple[str, ...]) -> None:
        stamp = timestamp(time.time())
        for line in batch:
            show(f"{stamp} {line}")

    follow_job(
        get_plugins().hooks,
        job.handle,
        credentials=lambda: credentials.fresh() if credentials else None,
        on_lines=lines,
    )


def _tail(history: RunHistory, run: RunRecord, step: str, show: Any) -> None:
    """From the file the orchestrator writes, until the step (or its run) has ended."""
    from stepframe._client.logs import step_log_path
    from stepframe._files import read_log_lines

    project = _project(history)
    shown_path: Path | None = None
    offset = 0
    while True:
        # Read the state before the file, so the last lines written before the end show.
        over = history.get_run(run.run_id).status != "running" or any(
            s.step == step and s.status in _ENDED for s in history.get_steps(run.run_id)
        )
        path = step_log_path(project, run.run_id, step, _latest_job(history, run, step, None))
        if path is not None and path != shown_path:
            shown_path, offset = path, 0  # a new attempt: its log from the start
        if path is not None and path.is_file():
            if path.stat().st_size < offset:
                offset = 0  # rewritten (a resume re-read it, or its tail was kept)
            # Whole lines only while it grows; the last partial one too once it is over.
            lines, offset = read_log_lines(path, offset, final=over)
            for line in lines:
                show(line)
        if over:
            return
        time.sleep(TAIL_POLL_SECONDS)
