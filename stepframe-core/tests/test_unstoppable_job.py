"""A job whose cancel could not be sent stays in the ledger as one that may still run.

The step's timeout cancels its attempt through the operator; when the backend cannot be
reached the console says the job may still be running and points at `stepframe jobs`,
so the ledger must keep the job active (`jobs list --running`), not record it ended.
"""

from __future__ import annotations

import attrs
import pytest

import stepframe
from stepframe import (
    ComponentKind,
    Flavor,
    JobHandle,
    JobState,
    JobStatus,
    RunFailed,
    hookimpl,
    step,
)


@attrs.define(eq=False)  # a plugin object must be hashable
class Unreachable:
    """An operator whose jobs run on and whose backend refuses every cancel."""

    cancels: int = 0

    @hookimpl
    def register_flavors(self, register):
        register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="unreachable"))

    @hookimpl
    def submit_step(self, launch, operator, credentials):
        return JobHandle("unreachable", operator.name, launch.job_name)

    @hookimpl
    def poll_step(self, handle, credentials, cursor):
        return JobStatus(JobState.RUNNING, poll_after=0.05)

    @hookimpl
    def cancel_step(self, handle, credentials):
        self.cancels += 1
        raise ConnectionError("the backend cannot be reached")


@step(operator="unreachable", timeout=0.2)
def endless() -> int:
    return 1


@stepframe.pipeline
def unstoppable() -> None:
    endless()


def test_a_timed_out_job_whose_cancel_failed_stays_active(project, run, make_plugins) -> None:
    backend = Unreachable()
    with pytest.raises(RunFailed):
        run(unstoppable, plugins=make_plugins(("unreachable", backend)))

    assert backend.cancels >= 1
    assert "could not stop job" in run.output and "it may still be running" in run.output
    with project.history() as history:
        (job,) = history.list_jobs(running_only=True)
    assert job.state == JobState.RUNNING.value
    assert job.note is not None and "may still be running" in job.note


@step(operator="unreachable", timeout=0.2, retries=2)
def endless_with_retries() -> int:
    return 1


@stepframe.pipeline
def retried() -> None:
    endless_with_retries()


def test_no_retry_runs_beside_a_job_that_could_not_be_stopped(project, run, make_plugins) -> None:
    backend = Unreachable()
    with pytest.raises(RunFailed):
        run(retried, plugins=make_plugins(("unreachable", backend)))

    with project.history() as history:
        jobs = history.list_jobs()
    assert [(job.attempt, job.state) for job in jobs] == [(1, JobState.RUNNING.value)]
    assert "retrying" not in run.output
