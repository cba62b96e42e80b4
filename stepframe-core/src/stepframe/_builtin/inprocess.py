"""The ``inprocess`` step operator: runs a step on a thread of the orchestrator's process.

It is the default operator.  It still goes through the launch and result manifests,
so a pipeline that works here works unchanged on any other operator.  Python cannot
stop a thread, so cancelling only stops waiting for it; the thread is a daemon and
dies with the process.
"""

from __future__ import annotations

import functools
import io
import secrets
import sys
import threading
import traceback
from pathlib import Path
from typing import TextIO

from stepframe._plugins.markers import hookimpl
from stepframe._types import (
    Component,
    ComponentKind,
    Credentials,
    Flavor,
    JobHandle,
    JobNotFound,
    JobState,
    JobStatus,
    Launch,
)
from stepframe.exceptions import StepframeError

FLAVOR = "inprocess"


class _Job:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.partial = ""
        self.done = threading.Event()
        self.failure: str | None = None  # the machinery broke: its traceback
        self.step_raised = False  # the step did: the result manifest has its error
        self.cancelled = False
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            *complete, self.partial = (self.partial + text).split("\n")
            self.lines.extend(complete)

    def finish(self) -> None:
        with self.lock:
            if self.partial:
                self.lines.append(self.partial)
                self.partial = ""
        self.done.set()


_jobs: dict[str, _Job] = {}
_job_ids: dict[str, str] = {}  # launch.job_name -> job id, for find_job
_job_of_thread: dict[int, _Job] = {}
_router_lock = threading.Lock()


class _ThreadRoutedStream(io.TextIOBase):
    """Sends what a step thread prints to its job's log, everything else through."""

    def __init__(self, original: TextIO) -> None:
        self.original = original

    def write(self, text: str) -> int:
        job = _job_of_thread.get(threading.get_ident())
        if job is None:
            return self.original.write(text)
        job.write(text)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    # Everything else is the original stream's, so code that reads sys.stdout.encoding
    # or writes to sys.stdout.buffer (bypassing the log) keeps working.

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.original.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.original.errors

    def __getattr__(self, name: str) -> object:
        return getattr(self.original, name)


def _route_output() -> None:
    with _router_lock:
        if not isinstance(sys.stdout, _ThreadRoutedStream):
            sys.stdout = _ThreadRoutedStream(sys.stdout)
        if not isinstance(sys.stderr, _ThreadRoutedStream):
            sys.stderr = _ThreadRoutedStream(sys.stderr)


def _run(job: _Job, launch: Launch) -> None:
    from stepframe._artifacts.materializers import MaterializerRegistry
    from stepframe._artifacts.shared import shared_store_for
    from stepframe._plugins.manager import get_plugins
    from stepframe.entrypoint import execute_launch

    _job_of_thread[threading.get_ident()] = job
    try:
        plugins = get_plugins()
        # The run's own store carries its connector's credentials; opening it again from
        # the URI would not.
        store = shared_store_for(launch.manifest_uri) or plugins.hooks.open_artifact_store(
            launch.manifest_uri, None
        )
        registry = MaterializerRegistry(plugins.materializers)
        result = execute_launch(store, launch.manifest_uri, registry, Path(launch.code_root))
        job.step_raised = result.error is not None
    except StepframeError as error:
        # The store refused the result (its disk is full, say): the error says what and
        # where in one line, which a traceback of stepframe's own frames would bury.
        job.failure = str(error)
    except BaseException:  # the machinery failed, not the step: report, never hang
        job.failure = traceback.format_exc()
    finally:
        _job_of_thread.pop(threading.get_ident(), None)
        job.finish()


@hookimpl
def register_flavors(register):  # type: ignore[no-untyped-def]
    register(
        Flavor(
            kind=ComponentKind.STEP_OPERATOR,
            name=FLAVOR,
            description="runs the step on a thread of the orchestrator's own process",
            jobs_outlive_client=False,
        )
    )


@hookimpl
def submit_step(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | None:
    _route_output()
    # Unique in the project's ledger, across runs, resumes and processes: the job name is
    # unique per run, step and attempt, and the suffix covers an attempt started twice.
    job_id = f"inprocess-{launch.job_name}-{secrets.token_hex(4)}"
    job = _Job()
    _jobs[job_id] = job
    _job_ids[launch.job_name] = job_id
    from stepframe._plugins.manager import run_in_this_context

    # In the submitting thread's context: the step sees the plugins its run activated.
    run = run_in_this_context(functools.partial(_run, job, launch))
    thread = threading.Thread(target=run, name=job_id, daemon=True)
    thread.start()
    return JobHandle(flavor=FLAVOR, operator=operator.name, job_id=job_id)


@hookimpl
def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    job_id = _job_ids.get(launch.job_name)
    if job_id is None:
        # Its thread could only be in this process, and it was never started here.
        return JobNotFound("in-process jobs end with the process that ran them")
    return JobHandle(flavor=FLAVOR, operator=operator.name, job_id=job_id)


@hookimpl
def poll_step(
    handle: JobHandle, credentials: Credentials | None, cursor: str | None
) -> JobStatus | None:
    job = _jobs.get(handle.job_id)
    if job is None:
        return JobStatus(
            JobState.FAILED,
            failure_reason="in-process jobs end with the process that ran them",
        )
    finished = job.done.is_set()  # read before the lines, so none written after are lost
    start = int(cursor or 0)
    with job.lock:
        lines = tuple(job.lines[start:])
    next_cursor = str(start + len(lines))
    if job.cancelled:
        state = JobState.CANCELLED
    elif not finished:
        state = JobState.RUNNING
    else:
        state = JobState.FAILED if job.failure or job.step_raised else JobState.SUCCEEDED
    if finished:
        _jobs.pop(handle.job_id, None)
    return JobStatus(state, lines, next_cursor, failure_reason=job.failure, poll_after=0.05)


@hookimpl
def cancel_step(handle: JobHandle, credentials: Credentials | None) -> bool | None:
    job = _jobs.get(handle.job_id)
    if job is not None:
        job.cancelled = True
    return True
