"""``stepframe jobs list`` asks again about a job whose submit answer was lost and that
its operator could not find at the time (``unknown``): once the backend answers, the job
is adopted, with its id, instead of staying unknown for ever.

Real processes: a third-party operator installed through an entry point hands its jobs
to the core's ``local`` operator, loses every submit answer, and cannot look jobs up
while a file says its backend is unreachable.
"""

from __future__ import annotations

import os
import subprocess

import pytest

PLUGIN = """
from __future__ import annotations

import json
from pathlib import Path

import attrs

from stepframe import Component, ComponentKind, Flavor, JobHandle, SubmitAmbiguousError, hookimpl


def _local():
    from stepframe._builtin import local

    return local


def _record(launch):
    return Path(launch.workdir) / f"{launch.job_name}.handle"


@hookimpl
def register_flavors(register):
    register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="forgetful", description="loses"))


@hookimpl
def submit_step(launch, operator, credentials):
    started = _local().submit_step(
        launch=attrs.evolve(launch, settings=None),
        operator=Component(ComponentKind.STEP_OPERATOR, operator.name, "local"),
        credentials=None,
    )
    handle = JobHandle("forgetful", operator.name, started.job_id, started.data)
    _record(launch).write_text(json.dumps(attrs.asdict(handle)))
    raise SubmitAmbiguousError("the connection was reset after the request was sent")


@hookimpl
def find_job(launch, operator, credentials):
    if (Path(launch.code_root) / "backend-unreachable").exists():
        return None
    return JobHandle(**json.loads(_record(launch).read_text()))


@hookimpl
def poll_step(handle, credentials, cursor):
    local_handle = attrs.evolve(handle, flavor="local")
    return _local().poll_step(handle=local_handle, credentials=None, cursor=cursor)


@hookimpl
def cancel_step(handle, credentials):
    local_handle = attrs.evolve(handle, flavor="local")
    return _local().cancel_step(handle=local_handle, credentials=None)
"""

PIPELINE = """
from stepframe import pipeline, step


@step(operator="forgetful")
def remote() -> int:
    return 5


@pipeline
def forgetting():
    remote()
"""


@pytest.fixture
def sf(cli, dist, site):
    distribution = dist("stepframe-forgetful")
    distribution.install({"forgetful": distribution.module(PLUGIN)})
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": path, "STEPFRAME_LOAD_PLUGINS": "forgetful"}
    return lambda *args: cli(*args, env=env)


def _states(project) -> list[tuple[str, str | None]]:
    with project.history() as history:
        return [(job.state, job.job_id) for job in history.list_jobs()]


def test_jobs_list_adopts_an_unknown_job_once_the_backend_answers(project, sf) -> None:
    (project.root / "backend-unreachable").touch()
    failed: subprocess.CompletedProcess[str] = sf("run", str(project.write(PIPELINE)))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert _states(project) == [("unknown", None)]
    assert sf("jobs", "list").returncode == 0
    assert _states(project) == [("unknown", None)]  # still nobody can tell

    (project.root / "backend-unreachable").unlink()
    listed = sf("jobs", "list")

    assert listed.returncode == 0, listed.stdout + listed.stderr
    ((state, job_id),) = _states(project)
    assert state != "unknown" and job_id is not None, listed.stdout
    assert job_id in listed.stdout
    assert "cannot tell" not in listed.stdout  # the old note no longer stands


COUNTED = """
import os
from pathlib import Path

from stepframe import pipeline, step

HERE = Path(__file__).resolve().parent


@step(operator="OPERATOR")
def remote() -> int:
    with open(HERE / "remote.runs", "a") as runs:
        runs.write(f"{os.getpid()}\\n")
    return 5


@pipeline
def forgetting():
    remote()
"""


def test_resume_asks_the_operator_that_submitted_even_after_the_step_moved(project, sf) -> None:
    """The step now names another operator: the job the first run may have started is
    still looked up through the operator that submitted it, and taken up, not run again."""
    (project.root / "backend-unreachable").touch()
    path = project.write(COUNTED.replace("OPERATOR", "forgetful"))
    failed = sf("run", str(path))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    run_id = failed.stdout.split()[1]
    (project.root / "backend-unreachable").unlink()
    path.write_text(COUNTED.replace("OPERATOR", "local"))

    resumed = sf("run", "--resume", run_id)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    runs = (project.root / "remote.runs").read_text().split()
    assert len(runs) == 1, resumed.stdout
