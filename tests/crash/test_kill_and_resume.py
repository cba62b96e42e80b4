"""Kill the orchestrator at each boundary of a job's life, maybe its job too, then resume.

For the ``local`` and the ``docker`` operator, at each boundary of ``middle``'s job (before
its intent is recorded, between intent and submit, during the submit, while it runs,
while its outputs are written, while its end is recorded), with SIGKILL (a host crash),
SIGINT (Ctrl-C) and SIGTERM (a service manager), with and without the job dying too (an
OOM killer, a lost machine): one ``stepframe run --resume`` must finish the run with every
promise kept (see conftest.py).  SIGINT and SIGTERM cancel the run: nothing may outlive it,
and it must be recorded as cancelled, not running.

"Jobs die" applies only where a job process exists to die: from the submit until the job
ended (after-submit, running, outputs-written).
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

BOUNDARIES = (
    "before-intent",
    "before-submit",
    "after-submit",
    "running",
    "outputs-written",
    "before-finish",
)
# Where a job process exists that can die with its orchestrator.
JOB_ALIVE = ("after-submit", "running", "outputs-written")
# Where the job itself holds, so that the run's cancel is sure to find it running.
JOB_HOLDS = ("running", "outputs-written")
ORCHESTRATOR_POINTS = ("before-intent", "before-submit", "after-submit", "before-finish")
SIGNALS = ("SIGKILL", "SIGINT", "SIGTERM")
OPERATORS = ("local", "docker")
EXIT_CANCELLED = 130


def _cases() -> list[Any]:
    cases: list[Any] = []
    for operator in OPERATORS:
        for boundary in BOUNDARIES:
            for signame in SIGNALS:
                for jobs_die in (False, True) if boundary in JOB_ALIVE else (False,):
                    die = "jobs-die" if jobs_die else "jobs-live"
                    cases.append(
                        pytest.param(
                            operator,
                            boundary,
                            signame,
                            jobs_die,
                            id=f"{operator}-{boundary}-{signame}-{die}",
                            marks=pytest.mark.crash_case(
                                operator, boundary, signame, "yes" if jobs_die else "no"
                            ),
                        )
                    )
    return cases


@pytest.mark.parametrize(("operator", "boundary", "signame", "jobs_die"), _cases())
def test_kill_then_resume(
    crash_project: Any, operator: str, boundary: str, signame: str, jobs_die: bool
) -> None:
    project = crash_project(operator)
    # The job holds where the case needs a live job process: "while running", and during
    # the submit when it is to die (else it may be done before it can be killed).
    hold = boundary == "running" or (boundary == "after-submit" and jobs_die)
    project.write_case(
        {"hold": hold, "job_point": "outputs-written" if boundary == "outputs-written" else None}
    )
    run = project.start(crash_at=boundary if boundary in ORCHESTRATOR_POINTS else None)
    points = [boundary] if boundary in ("outputs-written", *ORCHESTRATOR_POINTS) else []
    if hold:
        points.append("running")
    holders = {point: project.wait_reached(point, run) for point in points}
    run_id = run.run_id()

    run.process.send_signal(getattr(signal, signame))
    if signame == "SIGKILL":
        run.process.wait(timeout=30)
    else:  # the run has taken the signal in before anything held goes on
        run.wait_for_output(f"received {signame}: cancelling")
        if boundary in JOB_HOLDS and not jobs_die:
            project.wait_job_stopped(run_id, holders)  # by the run's cancel
    if jobs_die:
        project.kill_job(run_id, holders)
    project.release_all()
    code = run.process.wait(timeout=120)

    if signame == "SIGKILL":
        assert code == -signal.SIGKILL
        assert project.listed_status(run_id) == "interrupted"
    else:
        assert code == EXIT_CANCELLED, run.output()
        project.assert_nothing_outlives(run_id, [run])
        assert project.listed_status(run_id) == "cancelled", run.output()
        assert project.running_jobs() == "no running jobs\n"
        _assert_recorded_after_cancel(project, run_id, boundary, jobs_die)

    resumed = project.cli("run", "--resume", run_id)
    assert resumed.returncode == 0, (
        f"first run:\n{run.output()}\nresume:\n{resumed.stdout}{resumed.stderr}"
    )
    # A job that lived on through a SIGKILL must be followed, never run again.
    exactly_once = signame == "SIGKILL" and not jobs_die
    project.assert_survived(run_id, exactly_once=exactly_once)


def _assert_recorded_after_cancel(project: Any, run_id: str, boundary: str, jobs_die: bool) -> None:
    """The step and its ledger row say what became of the job, in the same word.

    A job the run's cancel stopped is cancelled (never failed).  While the orchestrator
    itself holds, the cancel reaches the step runner a moment after the signal, so a job
    submitted meanwhile may end by itself first (succeeded); a job the case killed may be
    recorded as failed.
    """
    steps, ledger = project.ledger(run_id)
    step_status = steps["middle"][0]
    states = [state for step, _attempt, state, _job in ledger if step == "middle"]
    if boundary in JOB_HOLDS and not jobs_die:
        allowed = {"cancelled"}
    elif jobs_die:
        allowed = {"cancelled", "failed"}
    else:
        allowed = {"cancelled", "succeeded"}
    assert step_status in allowed, f"middle is {step_status}: {steps}"
    assert len(states) == 1 and states[0] in allowed, f"middle's ledger rows: {ledger}"
    if step_status != "cancelled":
        assert states == [step_status], f"the step is {step_status}, its job {states}"
