"""``@step(retries=..., retry_delay=..., retry_on=..., timeout=...)`` (issue 14, part 5).

A retry is a new attempt with its own job in the ledger; a timeout cancels the attempt
through its operator.  Steps count their attempts in files; a plugin object registered
for one test reports failures as retryable or not.
"""

from __future__ import annotations

import datetime
import subprocess

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
from stepframe.exceptions import PipelineDefinitionError

FLAKY = """
import os
import time
from pathlib import Path

from stepframe import pipeline, step

HERE = Path(__file__).resolve().parent


def attempt(name):
    with open(HERE / f"{name}.runs", "a") as runs:
        runs.write(f"{os.getpid()}\\n")
    return len((HERE / f"{name}.runs").read_text().split())


@step(retries=RETRIES, retry_delay=0.01)
def flaky() -> int:
    n = attempt("flaky")
    if n <= FAILURES:
        raise RuntimeError(f"attempt {n} fails")
    return n


@step(operator="local", timeout=TIMEOUT, retries=TIMEOUT_RETRIES)
def slow(n: int) -> int:
    # The first attempt hangs until released; later ones return at once.
    if attempt("slow") == 1 and HANG:
        print("hanging", flush=True)
        while not (HERE / "release").exists():
            time.sleep(0.02)
    return n * 10


@pipeline
def retrying():
    slow(flaky())
"""


def source(
    retries: int = 2,
    failures: int = 2,
    timeout: float = 60,
    timeout_retries: int = 0,
    hang: bool = False,
) -> str:
    return (
        FLAKY.replace("TIMEOUT_RETRIES", str(timeout_retries))
        .replace("RETRIES", str(retries))
        .replace("FAILURES", str(failures))
        .replace("TIMEOUT", str(timeout))
        .replace("HANG", str(hang))
    )


def attempts(project, name: str) -> list[int]:
    path = project.root / f"{name}.runs"
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def ledger(project, step_name: str) -> list[tuple[int, str, str | None]]:
    with project.history() as history:
        return [(j.attempt, j.state, j.note) for j in history.list_jobs() if j.step == step_name]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def test_a_failed_attempt_is_retried_as_a_new_attempt(project, cli) -> None:
    out = ok(cli("run", str(project.write(source(retries=2, failures=2)))))

    assert "step 'flaky': attempt 1 failed" in out and "retrying" in out
    assert len(attempts(project, "flaky")) == 3
    assert [(a, s) for a, s, _ in ledger(project, "flaky")] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    shown = ok(cli("runs", "show", project.history().list_runs()[0].run_id))
    assert "attempts" in shown
    flaky_row = next(line.split() for line in shown.splitlines() if line.split()[:1] == ["flaky"])
    assert flaky_row[1:4] == ["succeeded", "inprocess", "3"]


def test_retries_run_out_and_the_step_fails(project, cli) -> None:
    result = cli("run", str(project.write(source(retries=1, failures=5))))

    assert result.returncode == 1
    assert "attempt 2 fails" in result.stdout
    assert len(attempts(project, "flaky")) == 2  # one attempt and one retry, no more
    assert attempts(project, "slow") == []


def test_a_cancelled_run_is_not_retried(project, cli_popen) -> None:
    """Ctrl-C during the retry delay ends the run; no attempt follows."""
    path = project.write(
        source(retries=3, failures=5).replace("retry_delay=0.01", "retry_delay=60")
    )
    process = cli_popen("run", str(path))
    assert process.stdout is not None
    for line in process.stdout:
        if "retrying in 60 s" in line:
            break
    process.send_signal(2)
    assert process.wait(timeout=30) == 130
    assert len(attempts(project, "flaky")) == 1


def test_an_attempt_over_its_timeout_is_cancelled_and_retried(project, cli) -> None:
    path = project.write(source(retries=0, failures=0, timeout=0.5, timeout_retries=1, hang=True))

    out = ok(cli("run", str(path), timeout=120))

    first, _second = attempts(project, "slow")
    assert "ran longer than the step's timeout (0.5 s); its job was stopped" in out
    assert [(a, s, n) for a, s, n in ledger(project, "slow")] == [
        (1, "cancelled", "timed out; its job was stopped (the backend reports it cancelled)"),
        (2, "succeeded", None),
    ]
    # The hung job was stopped through its operator, not left running.
    from stepframe._processes import is_running

    assert not is_running(first)
    assert "slow | hanging" in out


def test_a_timeout_without_retries_fails_the_step_as_timed_out(project, cli) -> None:
    path = project.write(source(retries=0, failures=0, timeout=0.5, hang=True))

    result = cli("run", str(path), timeout=120)

    assert result.returncode == 1
    assert "StepTimeout" in result.stdout
    (hung,) = attempts(project, "slow")
    from stepframe._processes import is_running

    assert not is_running(hung)


# ---- retry_on="retryable": the operator decides ----------------------------------------


@attrs.define(eq=False)  # a plugin object must be hashable
class Spotty:
    """An operator whose jobs fail; retryable (spot capacity reclaimed) or not."""

    retryable: bool
    submitted: list[str] = attrs.field(factory=list)

    @hookimpl
    def register_flavors(self, register):
        register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="spotty"))

    @hookimpl
    def submit_step(self, launch, operator, credentials):
        if operator.flavor != "spotty":
            return None
        self.submitted.append(launch.job_name)
        return JobHandle("spotty", operator.name, launch.job_name)

    @hookimpl
    def poll_step(self, handle, credentials, cursor):
        if handle.flavor != "spotty":
            return None
        if len(self.submitted) == 1:
            return JobStatus(
                JobState.FAILED, failure_reason="spot capacity reclaimed", retryable=self.retryable
            )
        return JobStatus(JobState.FAILED, failure_reason="the step raised")

    @hookimpl
    def cancel_step(self, handle, credentials):
        return True if handle.flavor == "spotty" else None


@step(operator="spotty", retries=3, retry_on="retryable")
def on_spot() -> int:
    return 1


@stepframe.pipeline
def spot_pipeline() -> None:
    on_spot()


@pytest.mark.parametrize("retryable", [True, False])
def test_retry_on_retryable_retries_only_what_the_operator_calls_retryable(
    project, run, make_plugins, retryable
) -> None:
    spotty = Spotty(retryable=retryable)
    with pytest.raises(RunFailed):
        run(spot_pipeline, plugins=make_plugins(("spotty", spotty)))
    # Retryable: the reclaimed attempt is retried once; the second failure (a step
    # error) is not retryable, so it ends there.  Not retryable: no retry at all.
    assert len(spotty.submitted) == (2 if retryable else 1)
    assert len(set(spotty.submitted)) == len(spotty.submitted)  # a new job name each


# ---- bad options are refused where the step is defined -----------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries=-1; give a whole number"),
        ({"retries": 1.5}, "retries=1.5"),
        ({"retry_delay": -2}, "retry_delay=-2; give seconds (0 or more)"),
        ({"timeout": 0}, "timeout=0; give seconds (more than 0)"),
        ({"retry_on": "sometimes"}, "retry_on='sometimes'; use 'any'"),
    ],
)
def test_bad_retry_and_timeout_options_are_refused_at_definition(options, message) -> None:
    with pytest.raises(PipelineDefinitionError, match="step 'f'") as caught:
        step(name="f", **options)(lambda: 1)
    assert message in str(caught.value)


def test_timedelta_options_are_seconds() -> None:
    defined = step(timeout=datetime.timedelta(minutes=2), retry_delay=datetime.timedelta(0))(
        lambda: 1
    )
    assert defined.timeout == 120.0 and defined.retry_delay == 0.0
