"""The job ledger (`stepframe jobs list`) says what the runs say, whichever process asks.

- an ``inprocess`` step that raised is a failed job, not a succeeded one;
- ``inprocess`` job ids never repeat in a project, across runs and orchestrator processes;
- a ``local`` job stopped through ``cancel_step`` is ``cancelled`` -- also when the stop
  came from another process (``stepframe jobs stop`` in a second shell), which the
  orchestrator following the job learns from the job's folder, not from its own memory.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

RAISES = """
from stepframe import pipeline, step


@step
def fine() -> int:
    return 1


@step
def broken(x: int) -> int:
    raise ValueError("no good")


@pipeline
def ledger():
    broken(fine())
"""


def _jobs(project, run_id: str | None = None):
    with project.history() as history:
        return history.list_jobs(run_id=run_id) if run_id else history.list_jobs()


def test_an_inprocess_step_that_raised_is_a_failed_job(project, run) -> None:
    result = run(project.load(RAISES), raise_on_failure=False)

    states = {job.step: job.state for job in _jobs(project, result.run_id)}
    assert states == {"fine": "succeeded", "broken": "failed"}
    assert "ValueError: no good" in run.output


def test_inprocess_job_ids_never_repeat_in_a_project(project, cli) -> None:
    path = project.write(RAISES.replace('raise ValueError("no good")', "return x"))
    for _ in range(2):  # each run in its own orchestrator process
        done = cli("run", "--no-cache", str(path))
        assert done.returncode == 0, done.stdout + done.stderr

    ids = [job.job_id for job in _jobs(project)]
    assert len(ids) == 4
    assert len(set(ids)) == 4, ids


WAITS = """
import os
import time
from pathlib import Path

from stepframe import pipeline, step


@step(operator="local")
def waits() -> int:
    Path("step.pid").write_text(str(os.getpid()))
    print("started", flush=True)
    time.sleep(60)
    return 1


@pipeline
def stoppable():
    waits()
"""


def _wait_for_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


def test_a_local_job_stopped_from_another_shell_is_cancelled(project, cli, cli_popen) -> None:
    process = cli_popen("run", str(project.write(WAITS)))
    step_pid = int(_wait_for_file(project.root / "step.pid"))
    try:
        (job,) = _jobs(project)
        while job.handle is None:  # recorded right after the submit returned
            time.sleep(0.02)
            (job,) = _jobs(project)

        stopped = cli("jobs", "stop", job.job_id)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "stopped local job" in stopped.stdout

        output, _ = process.communicate(timeout=60)
        assert "killed by" not in output and "status 143" not in output, output
        assert "[waits] cancelled" in output, output
        (job,) = _jobs(project)
        assert job.state == "cancelled"
        # The run says what happened to it too: cancelled, not succeeded or failed.
        assert process.returncode == 130, output
        with project.history() as history:
            assert history.get_run(job.run_id).status == "cancelled"
    finally:
        if process.poll() is None:
            process.kill()
        try:
            os.kill(step_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


COUNTS = """
import os
from pathlib import Path

from stepframe import pipeline, step


@step(operator="local")
def counted() -> int:
    with open({runs!r}, "a") as runs:
        runs.write(f"{{os.getpid()}}\\n")
    return 7


@pipeline
def once():
    counted()
"""


def test_a_local_job_whose_start_was_never_answered_is_found_and_runs_once(
    project, cli, cli_popen, tmp_path: Path
) -> None:
    """The orchestrator is killed while the zygote starts its job (the answer never
    arrives): the ledger's "submitting" row is settled by local's find_job, from the
    record the zygote wrote before answering, and ``--resume`` does not run it again."""
    from stepframe._builtin.local_zygote import BEFORE_SETSID

    runs = tmp_path / "runs.txt"
    crash = tmp_path / "crash"
    crash.mkdir()
    path = project.write(COUNTS.format(runs=str(runs)))
    process = cli_popen(
        "run",
        str(path),
        env={"STEPFRAME_CRASH_AT": BEFORE_SETSID, "STEPFRAME_CRASH_DIR": str(crash)},
    )
    _wait_for_file(crash / f"{BEFORE_SETSID}.reached")
    process.kill()
    process.wait(timeout=30)
    (crash / f"{BEFORE_SETSID}.release").touch()
    job_pid = int(_wait_for_file(runs).split()[0])

    listed = cli("jobs", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    (job,) = _jobs(project)
    assert job.handle is not None and job.job_id == str(job_pid), (job, listed.stdout)

    ((run_id, _),) = project.run_rows()
    resumed = cli("run", str(path), "--resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert runs.read_text().split() == [str(job_pid)]  # it ran once
