"""A docker job cancelled from one process reads as CANCELLED in every other (issue 10,
item 10): the mark lives with the job's work folder, not in one process's memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest

from stepframe import Component, ComponentKind, ImageRef, JobHandle, JobState, Launch
from stepframe_docker import BuildReport, DockerOperatorConfig, plugin

if TYPE_CHECKING:
    import docker
    from conftest import DockerProject

Build = Callable[..., tuple[ImageRef, BuildReport]]


@pytest.fixture
def image(build: Build, code: Callable[..., Path]) -> ImageRef:
    ref: ImageRef = build(code())[0]
    return ref


def _submit(image: ImageRef, workdir: Path, script: str) -> JobHandle:
    launch = Launch(
        run_id="sftest-cancel",
        pipeline="p",
        step="s",
        attempt=1,
        job_name=f"sftest-{uuid.uuid4().hex[:10]}",
        manifest_uri="sftest://no-store/launch.json",  # not file://: nothing to mount
        result_uri="sftest://no-store/result.json",
        command=("python", "-c", script),
        image=image,
        workdir=str(workdir),
    )
    operator = Component(ComponentKind.STEP_OPERATOR, "docker", "docker", DockerOperatorConfig())
    handle = plugin.submit_step(launch=launch, operator=operator, credentials=None)
    assert handle is not None
    return handle


def _wait_for_line(handle: JobHandle, wanted: str) -> None:
    cursor = None
    for _ in range(600):  # bounded; each round waits 0.1 s
        status = plugin.poll_step(handle=handle, credentials=None, cursor=cursor)
        assert status is not None
        assert not status.state.is_terminal, status
        cursor = status.cursor
        if wanted in status.log_lines:
            return
        threading.Event().wait(0.1)
    pytest.fail(f"{wanted!r} never came")


def _in_a_fresh_process(code: str, handle: JobHandle) -> str:
    """Run ``code`` in a new interpreter with the handle (as the ledger keeps it) in
    ``handle``; return what it printed."""
    prelude = (
        "import json, sys\n"
        "from stepframe import JobHandle\n"
        "from stepframe_docker import plugin\n"
        "handle = JobHandle(**json.loads(sys.argv[1]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), json.dumps(attrs.asdict(handle))],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


POLL_TO_THE_END = """
import time
cursor = None
for _ in range(600):
    status = plugin.poll_step(handle=handle, credentials=None, cursor=cursor)
    cursor = status.cursor
    if status.state.is_terminal:
        break
    time.sleep(0.1)
print(status.state.value, status.failure_reason)
"""


def test_cancel_in_one_process_is_cancelled_when_polled_from_a_third(
    image: ImageRef, engine: docker.DockerClient, tmp_path: Path
) -> None:
    from docker.errors import NotFound

    handle = _submit(image, tmp_path, "import time\nprint('ready', flush=True)\ntime.sleep(300)\n")
    _wait_for_line(handle, "ready")
    # The canceller exits at once, as `stepframe jobs stop` or a script does.
    said = _in_a_fresh_process(
        "print(plugin.cancel_step(handle=handle, credentials=None))\n", handle
    )
    assert said.strip() == "True"
    ended = _in_a_fresh_process(POLL_TO_THE_END, handle)
    assert ended.split() == ["cancelled", "None"], ended
    with pytest.raises(NotFound):
        engine.containers.get(handle.job_id)
    # And this process, which submitted it and still follows it, agrees.
    status = plugin.poll_step(handle=handle, credentials=None, cursor=None)
    assert status is not None and status.state is JobState.CANCELLED


def test_a_container_that_fails_by_itself_is_not_taken_for_cancelled(
    image: ImageRef, tmp_path: Path
) -> None:
    # SIGTERM from inside: the same status 143 a stop gives, but nobody cancelled it.
    script = "import os, signal\nprint('ready', flush=True)\nos.kill(os.getpid(), signal.SIGTERM)\n"
    handle = _submit(image, tmp_path, script)
    ended = _in_a_fresh_process(POLL_TO_THE_END, handle)
    assert ended.startswith("failed container exited with status 143"), ended
    # A cancel that comes after the end does not turn it into one.
    assert plugin.cancel_step(handle=handle, credentials=None) is True
    status = plugin.poll_step(handle=handle, credentials=None, cursor=None)
    assert status is not None and status.state is JobState.FAILED


SLEEPER = """\
import time

from stepframe import pipeline, step


@step(operator="docker")
def sleepy(seconds: int = 300) -> int:
    print("sleeping", flush=True)
    time.sleep(seconds)
    return seconds


@pipeline
def nap() -> None:
    sleepy()
"""


def test_jobs_stop_from_a_second_shell_cancels_the_run(
    docker_project: Callable[..., DockerProject],
) -> None:
    import re

    project = docker_project({"nap.py": SLEEPER})
    run = project.start("run", "nap.py")
    try:
        project.read_until(run, "sleepy | sleeping")
        listed = project.stepframe("jobs", "list", "--running")
        job = re.search(r"\bsleepy\s+docker\s+([0-9a-f]{64})\s+running\b", listed.stdout)
        assert job is not None, listed.stdout + listed.stderr
        stopped = project.stepframe("jobs", "stop", job.group(1))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        output, errors = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert "[sleepy] cancelled" in output, output + errors
    assert "status 143" not in output + errors and "failed" not in output + errors, output
    ledger = project.stepframe("jobs", "list").stdout
    assert re.search(rf"{job.group(1)}\s+cancelled\b", ledger), ledger
