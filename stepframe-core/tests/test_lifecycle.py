"""A job's life at its edges, through the ``stepframe`` command in real processes.

Each test reproduces one way a job used to be lost, run twice or left running (issue 10,
items 2 to 10): a job that reports CANCELLED, ``jobs attach`` before ``--resume``, a
running job beside a cache hit, a build that fails before the submit, a submit whose
answer is lost, an orchestrator killed together with its jobs, two resumes at once, and a
killed orchestrator's run as ``runs list`` shows it.

The operators come from a third-party plugin installed through an entry point, as a user
would install one: ``stopper`` jobs run nothing and only stop, ``imaged`` and ``lossy``
hand their jobs to the core's ``local`` operator (``imaged`` needs an image, which the
``flaky`` builder fails to build while a file says so; ``lossy`` loses its submit answer
in the way a file says).  Steps count their executions in files.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stepframe._processes import process_stat
from stepframe.testing import read_until

LIFECYCLE_PLUGIN = """
from __future__ import annotations

import json
from pathlib import Path

import attrs

from stepframe import (
    Component,
    ComponentKind,
    Credentials,
    Flavor,
    ImageRef,
    JobHandle,
    JobNotFound,
    JobState,
    JobStatus,
    StepframeError,
    SubmitAmbiguousError,
    hookimpl,
)


def _local():
    from stepframe._builtin import local

    return local


@attrs.frozen
class KeyringConfig:
    key: str


def _as_local(launch, operator):
    return _local().submit_step(
        launch=attrs.evolve(launch, settings=None),
        operator=Component(ComponentKind.STEP_OPERATOR, operator.name, "local"),
        credentials=None,
    )


@hookimpl
def register_flavors(register):
    register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="stopper", description="stops"))
    register(
        Flavor(kind=ComponentKind.STEP_OPERATOR, name="imaged", needs_image=True,
               description="local jobs in an image")
    )
    register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="lossy", description="loses answers"))
    register(Flavor(kind=ComponentKind.IMAGE_BUILDER, name="flaky", description="may fail"))
    register(
        Flavor(kind=ComponentKind.CONNECTOR, name="keyring", config_class=KeyringConfig,
               description="an account's key")
    )
    register(
        Flavor(kind=ComponentKind.STEP_OPERATOR, name="keyed",
               description="local jobs that only their own account's key reaches")
    )


@hookimpl
def authenticate(connector, resource):
    if connector.flavor != "keyring":
        return None
    return Credentials(connector.name, resource, {"key": connector.config.key})


def _account(handle, credentials, verb):
    # A backend's access check: a job belongs to the account whose key submitted it.
    key = credentials.values["key"] if credentials else "(none)"
    with open(Path(handle.data["dir"]) / "keyed-calls", "a") as calls:
        calls.write(f"{verb} {key}\\n")
    if key != handle.data["key"]:
        raise StepframeError(f"access denied: job {handle.job_id} is not in the account of {key}")


@hookimpl
def build_image(request, builder):
    if builder.flavor != "flaky":
        return None
    if (Path(request.code_root) / "builder-broken").exists():
        raise StepframeError("the image builder's engine is down; start it and resume")
    return ImageRef("example.test/steps:1", "sha256:" + "0" * 64)


@hookimpl
def submit_step(launch, operator, credentials):
    if operator.flavor == "stopper":
        Path(launch.workdir).mkdir(parents=True, exist_ok=True)
        (Path(launch.workdir) / f"{launch.job_name}.submitted").touch()
        return JobHandle("stopper", operator.name, launch.job_name, {"dir": launch.workdir})
    if operator.flavor == "imaged":
        assert launch.image is not None and launch.image.digest
        handle = _as_local(launch, operator)
        return JobHandle("imaged", operator.name, handle.job_id, handle.data)
    if operator.flavor == "lossy":
        mode = (Path(launch.code_root) / "lossy-mode").read_text().strip()
        if mode != "absent":
            handle = _as_local(launch, operator)
            found = JobHandle("lossy", operator.name, handle.job_id, handle.data)
            record = Path(launch.workdir) / f"{launch.job_name}.handle"
            record.write_text(json.dumps(attrs.asdict(found)))
        if mode == "delivered":
            return found
        raise SubmitAmbiguousError("the connection was reset after the request was sent")
    if operator.flavor == "keyed":
        handle = _as_local(launch, operator)
        data = {**handle.data, "key": credentials.values["key"], "dir": launch.workdir}
        return JobHandle("keyed", operator.name, handle.job_id, data)
    return None


@hookimpl
def find_job(launch, operator, credentials):
    if operator.flavor != "lossy":
        return None
    if (Path(launch.code_root) / "lossy-mode").read_text().strip() == "unknown":
        return None  # this backend cannot tell
    record = Path(launch.workdir) / f"{launch.job_name}.handle"
    if not record.exists():
        return JobNotFound(f"no job named {launch.job_name}")
    return JobHandle(**json.loads(record.read_text()))


def _stop_file(handle):
    return Path(handle.data["dir"]) / f"{handle.job_id}.stop"


@hookimpl
def poll_step(handle, credentials, cursor):
    if handle.flavor == "stopper":
        if _stop_file(handle).exists():
            return JobStatus(JobState.CANCELLED)
        return JobStatus(JobState.RUNNING, poll_after=0.05)
    if handle.flavor == "keyed":
        _account(handle, credentials, "poll")
    if handle.flavor in ("imaged", "lossy", "keyed"):
        return _local().poll_step(
            handle=attrs.evolve(handle, flavor="local"), credentials=None, cursor=cursor
        )
    return None


@hookimpl
def cancel_step(handle, credentials):
    if handle.flavor == "stopper":
        _stop_file(handle).touch()
        return True
    if handle.flavor == "keyed":
        _account(handle, credentials, "cancel")
    if handle.flavor in ("imaged", "lossy", "keyed"):
        return _local().cancel_step(handle=attrs.evolve(handle, flavor="local"), credentials=None)
    return None
"""

COUNTING = """
import os
import time
from pathlib import Path

from stepframe import pipeline, step

HERE = Path(__file__).resolve().parent


def _count(name):
    with open(HERE / f"{name}.runs", "a") as runs:
        runs.write(f"{os.getpid()}\\n")


def _hold():
    # Wait for the test's word when it asked for that before the step started.
    if (HERE / "hold").exists():
        print("started", flush=True)
        deadline = time.monotonic() + 60
        while not (HERE / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
"""

TWO_STEPS = (
    COUNTING
    + """

@step
def first() -> int:
    _count("first")
    return 20


@step(operator="OPERATOR")
def middle(x: int) -> int:
    _count("middle")
    _hold()
    return x + 1


@step
def last(y: int) -> int:
    _count("last")
    print("result", y * 2)
    return y * 2


@pipeline
def lifecycle():
    last(middle(first()))
"""
)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def executions(project, step: str) -> list[int]:
    path = project.root / f"{step}.runs"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    stat = process_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Poll a side effect (a process state, a file) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def submitted(project, step: str) -> list[Any]:
    """The step's ledger rows that have a job handle."""
    if not project.database_path.exists():
        return []
    with project.history() as history:
        return [j for j in history.list_jobs() if j.step == step and j.handle is not None]


def ledger(project) -> list[tuple[str, int, str]]:
    with project.history() as history:
        return [(j.step, j.attempt, j.state) for j in history.list_jobs()]


def only_run(project):
    with project.history() as history:
        (run,) = history.list_runs()
    return run


class Plugin:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env


@pytest.fixture
def lifecycle(dist, site) -> Plugin:
    distribution = dist("stepframe-lifecycle")
    distribution.install({"lifecycle": distribution.module(LIFECYCLE_PLUGIN)})
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return Plugin({"PYTHONPATH": path, "STEPFRAME_LOAD_PLUGINS": "lifecycle"})


@pytest.fixture
def sf(cli, lifecycle) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The CLI, with the lifecycle plugin."""
    return lambda *args, **kw: cli(*args, env=lifecycle.env, **kw)


@pytest.fixture
def sf_popen(cli_popen, lifecycle) -> Callable[..., subprocess.Popen[str]]:
    return lambda *args, env=None: cli_popen(*args, env={**lifecycle.env, **(env or {})})


@pytest.fixture
def released(project):
    """Steps that hold wait until the test ends at the latest."""
    yield
    (project.root / "release").touch()


def write_pipeline(project, operator: str) -> Path:
    source = TWO_STEPS.replace("OPERATOR", operator)
    return project.write(source, name=f"lifecycle_{uuid.uuid4().hex[:8]}")


def start_and_kill(project, sf_popen, operator: str = "local") -> tuple[str, int]:
    """Run the pipeline until ``middle``'s job holds, SIGKILL the orchestrator; return the
    run id and the job's pid (the job lives on)."""
    (project.root / "hold").touch()
    process = sf_popen("run", str(write_pipeline(project, operator)))
    read_until(process, "middle | started")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    (job,) = executions(project, "middle")
    assert alive(job)
    return only_run(project).run_id, job


# ---- item 2: a job that reports CANCELLED --------------------------------------------------


def test_a_job_stopped_from_another_shell_ends_the_run_as_cancelled(project, sf, sf_popen) -> None:
    """`jobs stop` from a second shell, for an operator that reports CANCELLED: the run
    ends (it used to spin for ever at 100% CPU), cancelled, its dependents skipped."""
    ok(sf("step-operator", "register", "stopper", "-f", "stopper"))
    process = sf_popen("run", str(write_pipeline(project, "stopper")))
    wait_until(lambda: submitted(project, "middle"), "middle's job to be submitted")
    (row,) = submitted(project, "middle")

    out = ok(sf("jobs", "stop", row.job_id))

    assert f"stopped stopper job {row.job_id}" in out
    assert process.wait(timeout=60) == 130
    run = only_run(project)
    assert run.status == "cancelled"
    with project.history() as history:
        steps = {s.step: s.status for s in history.get_steps(run.run_id)}
    assert steps == {"first": "succeeded", "middle": "cancelled", "last": "skipped"}
    assert ("middle", 1, "cancelled") in ledger(project)
    assert executions(project, "last") == []


# ---- item 3: jobs attach, then --resume ----------------------------------------------------


def test_a_job_attach_followed_to_its_end_is_not_run_again_by_resume(
    project, sf, sf_popen, released
) -> None:
    run_id, job = start_and_kill(project, sf_popen)
    attach = sf_popen("jobs", "attach", str(job))
    read_until(attach, "following local job")
    (project.root / "release").touch()
    assert attach.wait(timeout=60) == 0
    assert ("middle", 1, "succeeded") in ledger(project)

    out = ok(sf("run", "--resume", run_id))

    assert "last | result 42" in out
    assert executions(project, "middle") == [job]  # it used to run a second time
    assert [row for row in ledger(project) if row[0] == "middle"] == [("middle", 1, "succeeded")]


# ---- item 4: a running job beside a cache hit ---------------------------------------------


def test_resume_follows_its_running_job_rather_than_a_cache_hit(
    project, sf, sf_popen, released
) -> None:
    path = write_pipeline(project, "local")
    (project.root / "hold").touch()
    killed = sf_popen("run", str(path))
    read_until(killed, "middle | started")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)
    run_id = only_run(project).run_id
    (job,) = executions(project, "middle")
    # Another run of the same pipeline caches the step's result meanwhile.
    (project.root / "hold").unlink()
    ok(sf("run", str(path)))
    assert len(executions(project, "middle")) == 2

    resumed = sf_popen("run", "--resume", run_id)
    lines = read_until(resumed, "[middle] running")
    assert f"re-attached to local job {job}" in lines[-1]
    (project.root / "release").touch()
    assert resumed.wait(timeout=60) == 0

    assert alive(job) is False
    assert ok(sf("jobs", "list", "--running")) == "no running jobs\n"
    with project.history() as history:
        steps = {s.step: s.status for s in history.get_steps(run_id)}
    assert steps["middle"] == "succeeded"


# ---- item 5: a step that fails before its job is submitted --------------------------------


def test_a_step_whose_image_build_failed_resumes_with_a_new_attempt(project, sf) -> None:
    ok(sf("image-builder", "register", "flaky", "-f", "flaky"))
    ok(sf("step-operator", "register", "imaged", "-f", "imaged"))
    ok(sf("stack", "register", "built", "-i", "flaky", "--set"))
    (project.root / "builder-broken").touch()

    failed = sf("run", str(write_pipeline(project, "imaged")))

    assert failed.returncode == 1
    assert "engine is down" in failed.stdout + failed.stderr
    run_id = only_run(project).run_id
    (project.root / "builder-broken").unlink()
    out = ok(sf("run", "--resume", run_id))  # used to fail: attempt-1/launch.json exists
    assert "last | result 42" in out
    assert len(executions(project, "middle")) == 1
    assert ("middle", 2, "succeeded") in ledger(project)
    attempts = project.root / ".stepframe" / "artifacts" / "runs" / run_id / "middle"
    if attempts.exists():  # the local store's layout: both attempts kept, none overwritten
        assert {p.name for p in attempts.iterdir()} >= {"attempt-1", "attempt-2"}


# ---- item 6: a submit whose answer was lost ------------------------------------------------


def test_a_lost_submit_answer_adopts_the_job_the_backend_has(project, sf) -> None:
    ok(sf("step-operator", "register", "lossy", "-f", "lossy"))
    (project.root / "lossy-mode").write_text("found")

    out = ok(sf("run", str(write_pipeline(project, "lossy"))))

    assert "the submit's answer was lost" in out and "found job" in out
    assert "last | result 42" in out
    assert len(executions(project, "middle")) == 1  # followed, not submitted again
    assert ("middle", 1, "succeeded") in ledger(project)


def test_a_lost_submit_proven_absent_fails_and_resume_submits_the_next_attempt(project, sf) -> None:
    ok(sf("step-operator", "register", "lossy", "-f", "lossy"))
    (project.root / "lossy-mode").write_text("absent")

    failed = sf("run", str(write_pipeline(project, "lossy")))

    assert failed.returncode == 1
    assert executions(project, "middle") == []
    with project.history() as history:
        (row,) = [j for j in history.list_jobs() if j.step == "middle"]
    assert row.state == "failed" and "never created" in (row.note or "")
    (project.root / "lossy-mode").write_text("delivered")
    ok(sf("run", "--resume", only_run(project).run_id))
    assert ("middle", 2, "succeeded") in ledger(project)


def test_a_lost_submit_nobody_can_settle_stays_visible_as_unknown(project, sf) -> None:
    ok(sf("step-operator", "register", "lossy", "-f", "lossy"))
    (project.root / "lossy-mode").write_text("unknown")

    failed = sf("run", str(write_pipeline(project, "lossy")))

    assert failed.returncode == 1
    assert "cannot tell" in failed.stdout + failed.stderr
    table, note = ok(sf("jobs", "list", "--running")).splitlines()[1:]
    assert table.split()[1] == "middle" and table.split()[4] == "unknown"
    assert "ledger row" in note and "cannot tell whether job" in note


@pytest.mark.parametrize("settled_by", ["jobs list", "resume"])
def test_a_submit_the_killed_orchestrator_never_saw_answered_is_found_again(
    project, sf, sf_popen, tmp_path, released, settled_by
) -> None:
    """Killed after the backend accepted the job and before the ledger had its handle:
    `jobs list` and `--resume` ask the operator (find_job) and adopt the job."""
    ok(sf("step-operator", "register", "lossy", "-f", "lossy"))
    (project.root / "lossy-mode").write_text("delivered")
    (project.root / "hold").touch()
    crash = tmp_path / "crash"
    crash.mkdir()
    env = {
        "STEPFRAME_CRASH_AT": "after-submit",
        "STEPFRAME_CRASH_STEP": "middle",
        "STEPFRAME_CRASH_DIR": str(crash),
    }
    process = sf_popen("run", str(write_pipeline(project, "lossy")), env=env)
    wait_until(lambda: (crash / "after-submit.reached").exists(), "the submit to return")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    run_id = only_run(project).run_id
    assert [(j.step, j.state) for j in project.history().list_jobs() if j.step == "middle"] == [
        ("middle", "submitting")
    ]
    wait_until(lambda: executions(project, "middle"), "the job to start")
    (job,) = executions(project, "middle")

    if settled_by == "jobs list":
        (row,) = [line.split() for line in ok(sf("jobs", "list", "--running")).splitlines()[1:]]
        assert row[1:5] == ["middle", "lossy", str(job), "pending"]  # adopted by its handle
    (project.root / "release").touch()
    out = ok(sf("run", "--resume", run_id))

    assert f"re-attached to lossy job {job}" in out or "found job" in out
    assert executions(project, "middle") == [job]  # adopted, never submitted again
    assert [row for row in ledger(project) if row[0] == "middle"] == [("middle", 1, "succeeded")]


# ---- item 7: the orchestrator and its jobs killed together --------------------------------


def test_a_job_killed_with_its_orchestrator_runs_again_on_the_first_resume(
    project, sf, sf_popen, released
) -> None:
    run_id, job = start_and_kill(project, sf_popen)
    os.killpg(job, signal.SIGKILL)  # the host's OOM killer takes the job too
    wait_until(lambda: not alive(job), "the job to die")
    (project.root / "hold").unlink()

    out = ok(sf("run", "--resume", run_id))  # one resume is enough

    assert "submitting attempt 2" in out
    assert "last | result 42" in out
    middle = executions(project, "middle")
    assert len(middle) == 2 and middle[0] == job
    assert ("middle", 2, "succeeded") in ledger(project)


# ---- item 8: two resumes at once ----------------------------------------------------------


def test_of_two_resumes_started_together_exactly_one_runs(project, sf_popen, released) -> None:
    run_id, job = start_and_kill(project, sf_popen)

    both = [sf_popen("run", "--resume", run_id) for _ in range(2)]
    # The loser ends at once; the winner follows the held job until it is released.
    loser = next(p for p in _first_to_end(both))
    assert loser.returncode == 2
    text = loser.stdout.read() if loser.stdout else ""
    winner = both[1] if loser is both[0] else both[0]
    assert f"run {run_id} is still being run by process {winner.pid}" in text
    (project.root / "release").touch()
    assert winner.wait(timeout=60) == 0
    assert executions(project, "middle") == [job]
    assert len(executions(project, "last")) == 1


def _first_to_end(processes: list[subprocess.Popen[str]]):
    ended: list[subprocess.Popen[str]] = []

    def one_ended() -> bool:
        ended.extend(p for p in processes if p.poll() is not None)
        return bool(ended)

    wait_until(one_ended, "one of the resumes to end")
    yield ended[0]


# ---- item 9: a run whose orchestrator is gone ---------------------------------------------


def test_a_killed_run_is_listed_as_interrupted(project, sf, sf_popen, released) -> None:
    run_id, _job = start_and_kill(project, sf_popen)

    listed = ok(sf("runs", "list"))

    assert run_id in listed and "interrupted" in listed and "running" not in listed
    with sqlite3.connect(project.database_path) as conn:
        (stored,) = conn.execute("SELECT status FROM runs").fetchone()
    assert stored == "running"  # derived when read: a dead process writes nothing


@pytest.mark.parametrize("interrupt", ["SIGKILL", "double SIGINT"])
def test_a_run_whose_orchestrator_was_stopped_at_once_is_interrupted(
    project, sf, sf_popen, released, interrupt
) -> None:
    (project.root / "hold").touch()
    process = sf_popen("run", str(write_pipeline(project, "local")))
    read_until(process, "middle | started")
    if interrupt == "SIGKILL":
        process.send_signal(signal.SIGKILL)
    else:
        process.send_signal(signal.SIGINT)
        read_until(process, "received SIGINT")
        process.send_signal(signal.SIGINT)  # the second one exits at once
    process.wait(timeout=30)
    run_id = only_run(project).run_id

    (row,) = [line for line in ok(sf("runs", "list")).splitlines() if run_id in line]
    assert "interrupted" in row.split()
    # And it can be resumed: whether the first Ctrl-C's cancel reached the job before the
    # second one ended the process or not, the step's result comes back.
    (project.root / "release").touch()
    out = ok(sf("run", "--resume", run_id, "--no-cache"))
    assert f"run {run_id} succeeded" in out
    assert "last | result 42" in out


def test_an_error_escaping_the_scheduler_ends_the_run_as_failed(project, run) -> None:
    """In a process that goes on (a notebook), the run must not stay 'running'."""
    from stepframe._orchestrator.console import Console

    class Broken(Console):
        def step_state(self, step: str, state: str, detail: str = "") -> None:
            if state == "running":
                raise RuntimeError("the console broke")

    from stepframe._orchestrator.run import run_pipeline
    from stepframe._project import Project

    module = project.module(TWO_STEPS.replace('@step(operator="OPERATOR")', "@step"))
    with pytest.raises(RuntimeError, match="the console broke"):
        run_pipeline(
            module.lifecycle.compile(),
            plugins=run.plugins,
            project=Project(project.root),
            console=Broken(),
        )
    run_record = only_run(project)
    assert run_record.status == "failed"
    assert "the console broke" in (run_record.error or "")


def ctrl_c_at(point: str, project, sf_popen, tmp_path: Path) -> int:
    """Run the pipeline (``middle`` on ``local``) until ``middle`` is at crash point
    ``point``, press Ctrl-C there, and let it go on; the orchestrator's exit status."""
    crash = tmp_path / "crash"
    crash.mkdir()
    env = {
        "STEPFRAME_CRASH_AT": point,
        "STEPFRAME_CRASH_STEP": "middle",
        "STEPFRAME_CRASH_DIR": str(crash),
    }
    process = sf_popen("run", str(write_pipeline(project, "local")), env=env)
    wait_until(lambda: (crash / f"{point}.reached").exists(), f"middle to reach {point}")
    process.send_signal(signal.SIGINT)
    read_until(process, "received SIGINT")
    (crash / f"{point}.release").touch()
    return process.wait(timeout=60)


def test_a_ctrl_c_before_the_submit_starts_no_job(project, sf_popen, tmp_path) -> None:
    """The orchestrator is between the ledger's intent and the submit when Ctrl-C comes:
    no paid job may start only to be stopped again."""
    assert ctrl_c_at("before-submit", project, sf_popen, tmp_path) == 130
    assert executions(project, "middle") == []
    with project.history() as history:
        (row,) = [j for j in history.list_jobs() if j.step == "middle"]
    assert (row.state, row.job_id) == ("cancelled", None)  # never submitted at all


def test_a_job_the_interrupted_run_had_cancelled_runs_again_on_resume(
    project, sf, sf_popen, released
) -> None:
    """The interrupted orchestrator sent the cancel but died before the ledger said so:
    the resume finds the job cancelled and runs the step again instead of ending."""
    import json
    import sys

    run_id, job = start_and_kill(project, sf_popen)
    with project.history() as history:
        (row,) = [j for j in history.list_jobs() if j.step == "middle"]
    assert row.state == "running" and row.handle is not None
    handle = json.dumps({"flavor": "local", "operator": "local", "job_id": row.handle.job_id,
                         "data": dict(row.handle.data)})  # fmt: skip
    stop = (
        "import json, sys; from stepframe import JobHandle; "
        "from stepframe._builtin import local; "
        "local.cancel_step(handle=JobHandle(**json.loads(sys.argv[1])), credentials=None)"
    )
    subprocess.run([sys.executable, "-c", stop, handle], check=True, timeout=60)
    wait_until(lambda: not alive(job), "the cancelled job to end")
    (project.root / "hold").unlink()

    out = ok(sf("run", "--resume", run_id))

    assert "was cancelled before this resume; submitting attempt 2" in out
    assert "last | result 42" in out
    assert ("middle", 2, "succeeded") in ledger(project)


# ---- issue 12 review, item 1: a re-attached job is reached by its own operator -------------


def keyed_accounts(sf) -> None:
    """Two accounts, an operator in each; the stack runs steps in account ``alpha``."""
    for account in ("alpha", "beta"):
        ok(sf("connector", "register", account, "-f", "keyring", "--key", account))
        ok(sf("step-operator", "register", f"in-{account}", "-f", "keyed", "--connector", account))
    ok(sf("stack", "register", "remote", "-s", "in-alpha", "--set"))


def start_in_alpha_then_move_to_beta(project, sf, sf_popen) -> tuple[str, int]:
    """Run ``middle`` in account alpha until its job holds, kill the orchestrator, then move
    the step and the stack to account beta, as a user changing accounts would."""
    (project.root / "hold").touch()
    path = write_pipeline(project, "in-alpha")
    process = sf_popen("run", str(path))
    read_until(process, "middle | started")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    (job,) = executions(project, "middle")
    path.write_text(path.read_text().replace('operator="in-alpha"', 'operator="in-beta"'))
    ok(sf("stack", "update", "remote", "-s", "in-beta", "-r", "in-alpha"))
    return only_run(project).run_id, job


def keyed_calls(project) -> list[str]:
    return (project.root / ".stepframe" / "jobs" / "keyed-calls").read_text().splitlines()


def test_resume_reaches_a_running_job_with_the_operator_that_submitted_it(
    project, sf, sf_popen, released
) -> None:
    """The ledger row's operator (account alpha) polls the job, not the step's current one
    (account beta, whose key the backend refuses): the resume follows the job to its end."""
    keyed_accounts(sf)
    run_id, job = start_in_alpha_then_move_to_beta(project, sf, sf_popen)
    (project.root / "release").touch()

    out = ok(sf("run", "--resume", run_id))

    assert "submitted by step operator 'in-alpha', which stack 'remote' no longer has" in out
    assert f"re-attached to keyed job {job}" in out
    assert "last | result 42" in out
    assert executions(project, "middle") == [job]
    assert set(keyed_calls(project)) == {"poll alpha"}
    assert [row for row in ledger(project) if row[0] == "middle"] == [("middle", 1, "succeeded")]


def test_resume_says_so_when_the_job_s_operator_is_registered_nowhere(
    project, sf, sf_popen, released
) -> None:
    keyed_accounts(sf)
    run_id, job = start_in_alpha_then_move_to_beta(project, sf, sf_popen)
    ok(sf("step-operator", "delete", "in-alpha"))

    failed = sf("run", "--resume", run_id)

    assert failed.returncode == 1
    assert "Traceback" not in failed.stdout + failed.stderr
    assert (
        f"keyed job {job} of step 'middle' (attempt 1) was submitted by step operator "
        "'in-alpha', which stack 'remote' no longer has and which is no longer registered"
    ) in failed.stdout
    # Nobody reached the job with another account's key, and it stays in the ledger as
    # running, where `jobs list --running` shows it; no second job was started beside it.
    assert set(keyed_calls(project)) == {"poll alpha"}
    assert alive(job) and executions(project, "middle") == [job]
    assert [row for row in ledger(project) if row[0] == "middle"] == [("middle", 1, "running")]


# ---- issue 12 review, item 3: a step that ends well while the run is being cancelled ----


def test_a_step_whose_job_succeeds_during_the_cancel_keeps_its_outputs(
    project, sf, sf_popen, tmp_path
) -> None:
    """Ctrl-C comes as ``middle``'s job has just ended well, before the orchestrator
    recorded it: the step is recorded succeeded with its outputs (it used to be
    'cancelled', its outputs dropped), and a resume takes them instead of running it."""
    assert ctrl_c_at("before-finish", project, sf_popen, tmp_path) == 130
    run = only_run(project)
    assert run.status == "cancelled"
    with project.history() as history:
        steps = {s.step: s.status for s in history.get_steps(run.run_id)}
        outputs = {(a.step, a.output) for a in history.get_artifacts(run.run_id)}
    assert steps == {"first": "succeeded", "middle": "succeeded", "last": "cancelled"}
    assert ("middle", "output") in outputs
    out = ok(sf("run", "--resume", run.run_id))
    assert "[middle] succeeded (done before the interruption)" in out
    assert "last | result 42" in out
    assert len(executions(project, "middle")) == 1


# ---- issue 12 review, item 2: a timed-out attempt, as its backend ended it ------------------


def test_a_timed_out_attempt_is_recorded_as_timed_out_with_the_backend_s_final_state(
    project, sf
) -> None:
    """The step's timeout stops a ``stopper`` job, which its backend then reports
    cancelled: the ledger says cancelled and timed out (it used to say failed), and the
    run's error, `jobs list` and `runs show` agree."""
    import json

    ok(sf("step-operator", "register", "stopper", "-f", "stopper"))
    timed = '@step(operator="stopper", timeout=0.5)'
    path = project.write(TWO_STEPS.replace('@step(operator="OPERATOR")', timed), name="timed")

    failed = sf("run", str(path))

    assert failed.returncode == 1
    said = "ran longer than the step's timeout (0.5 s); its job was stopped (the backend "
    assert said + "reports it cancelled)" in failed.stdout
    run_id = only_run(project).run_id
    with project.history() as history:
        (row,) = [j for j in history.list_jobs() if j.step == "middle"]
        (middle,) = [s for s in history.get_steps(run_id) if s.step == "middle"]
    assert (row.state, row.timed_out_after) == ("cancelled", 0.5)
    assert middle.status == "failed" and said in (middle.error or "")
    (listed,) = [line for line in ok(sf("jobs", "list")).splitlines() if " middle " in line]
    assert "cancelled (timed out)" in listed
    (as_json,) = [j for j in json.loads(ok(sf("jobs", "list", "--json"))) if j["step"] == "middle"]
    assert (as_json["state"], as_json["timed_out_after"]) == ("cancelled", 0.5)
    assert said in ok(sf("runs", "show", run_id))


# ---- issue 12 review, item 4: `jobs list` reaches jobs the way a resume does ----------------


def test_jobs_list_does_not_ask_another_flavor_about_a_lost_submit(project, sf) -> None:
    """A submit whose answer was lost stays unknown; then its operator's name is given to
    an operator of another flavor.  `jobs list` must not ask that one (the ``local``
    operator would adopt the job as its own): the row stays unknown and says why, as
    `run --resume` does."""
    ok(sf("step-operator", "register", "lossy", "-f", "lossy"))
    (project.root / "lossy-mode").write_text("unknown")
    assert sf("run", str(write_pipeline(project, "lossy"))).returncode == 1
    ok(sf("step-operator", "delete", "lossy"))
    ok(sf("step-operator", "register", "lossy", "-f", "local"))

    listed = ok(sf("jobs", "list", "--running")).splitlines()

    assert listed[1].split()[1:5] == ["middle", "lossy", "-", "unknown"]
    assert "submitted by a lossy step operator named 'lossy'" in listed[2]
    assert "'lossy' is now a local operator" in listed[2]
    with project.history() as history:
        (row,) = [j for j in history.list_jobs() if j.step == "middle"]
    assert (row.state, row.handle) == ("unknown", None)
