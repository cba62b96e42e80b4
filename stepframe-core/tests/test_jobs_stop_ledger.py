"""``stepframe jobs stop`` records what became of the job, not only that it was asked.

A job that finishes its work when asked to stop (it handles SIGTERM by finishing) ended
``succeeded``: its result is there.  The ledger says so, and ``run --resume`` takes the
result instead of running the step a second time.  Processes are real: an orchestrator
killed while its ``local`` job runs, ``jobs stop`` and ``--resume`` from other processes.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

PIPELINE = """
import os
import signal
import time
from pathlib import Path

from stepframe import pipeline, step

HERE = Path(__file__).resolve().parent


def count(name):
    with open(HERE / f"{name}.runs", "a") as runs:
        runs.write(f"{os.getpid()}\\n")
    return len((HERE / f"{name}.runs").read_text().split())


@step(operator="local")
def stubborn() -> int:
    asked = []
    signal.signal(signal.SIGTERM, lambda *_: asked.append(True))
    if count("stubborn") == 1:
        print("started", flush=True)
        deadline = time.monotonic() + 60
        while not asked and time.monotonic() < deadline:
            time.sleep(0.02)
    return 7


@step
def after(x: int) -> int:
    return x + 1


@pipeline
def stopping():
    after(stubborn())
"""


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def _executions(root: Path) -> int:
    path = root / "stubborn.runs"
    return len(path.read_text().split()) if path.exists() else 0


def test_a_job_that_finished_when_stopped_is_succeeded_and_not_run_again(
    project, cli, cli_popen
) -> None:
    path = project.write(PIPELINE)
    orchestrator = cli_popen("run", str(path))
    assert orchestrator.stdout is not None
    for line in orchestrator.stdout:
        if "stubborn | started" in line:
            break
    else:
        raise AssertionError("the step never started")
    orchestrator.send_signal(signal.SIGKILL)
    orchestrator.wait(timeout=10)
    with project.history() as history:
        (job,) = [j for j in history.list_jobs() if j.step == "stubborn"]
    assert job.job_id is not None

    out = _ok(cli("jobs", "stop", job.job_id))

    assert "succeeded" in out, out
    with project.history() as history:
        assert history.get_job(job.id).state == "succeeded"
    resumed = _ok(cli("run", "--resume", job.run_id))
    assert _executions(project.root) == 1, resumed
    assert f"run {job.run_id} succeeded" in resumed
