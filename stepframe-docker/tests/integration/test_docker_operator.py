"""The docker step operator on a real engine: a pipeline whose middle step runs in a
container, and the job life cycle (logs, failure, cancel, removal) through the hooks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from stepframe import Component, ComponentKind, ImageRef, JobHandle, JobState, JobStatus, Launch
from stepframe_docker import BuildReport, DockerOperatorConfig, plugin

Build = Callable[..., tuple[ImageRef, BuildReport]]

if TYPE_CHECKING:
    import docker


PIPELINE = """\
import os
import sys
from pathlib import Path

from stepframe import pipeline, step


@step
def make(n: int = 6) -> list[float]:
    return [float(i) for i in range(n)]


@step(operator="docker", settings={"docker": {"environment": {"SCALE": "10"}}})
def scale(xs: list[float]) -> tuple[Path, dict[str, str]]:
    where = {
        "in_container": str(os.path.exists("/.dockerenv")),
        "cwd": os.getcwd(),
        "python": sys.prefix,
    }
    print("scaling", len(xs), "values in", where["cwd"])
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "scaled.txt"
    out.write_text("\\n".join(str(x * float(os.environ["SCALE"])) for x in xs))
    return out, where


@step
def total(scaled: Path, where: dict[str, str]) -> float:
    value = sum(float(line) for line in scaled.read_text().splitlines())
    print("total", value, "where", sorted(where.items()))
    return value


@pipeline
def flow(n: int = 6) -> None:
    scaled, where = scale(make(n))
    total(scaled, where)
"""

STACK = """\
active_stack = "containers"

[image_builders.docker]
flavor = "docker"
parent_image = "{base_image}"

[container_registries.local]
flavor = "default"
uri = "{registry}"

[step_operators.docker]
flavor = "docker"

[stacks.containers]
image_builder = "docker"
container_registry = "local"
step_operators = ["docker"]
"""


def test_pipeline_with_a_middle_step_in_docker(
    tmp_path: Path, registry: str, base_image: str, engine: docker.DockerClient
) -> None:
    project = tmp_path / "flowproj"
    project.mkdir()
    (project / "stepframe.toml").write_text(STACK.format(base_image=base_image, registry=registry))
    (project / "flow.py").write_text(PIPELINE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    result = subprocess.run(
        [sys.executable, "-m", "stepframe", "run", "flow.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The middle step's log lines were streamed from the container.
    assert re.search(r"scale \| scaling 6 values in /app", output), output
    # Its outputs went through the local artifact store to the next step.
    assert "total 150.0" in output
    assert "('in_container', 'True')" in output
    assert "('python', '/opt/stepframe/venv')" in output
    run_id = re.search(r"run (\S+) of pipeline 'flow'", output)
    assert run_id is not None, output
    # The container is gone once the step ended.
    left = engine.containers.list(all=True, filters={"label": f"stepframe.run={run_id.group(1)}"})
    assert left == []
    # The artifacts are in the project's own store, where file:// URIs point.
    outputs = list((project / ".stepframe" / "artifacts" / "runs").glob("*/scale/*/outputs/*"))
    assert sorted(p.name for p in outputs) == ["output_0", "output_1"]


SLEEPER = """\
import time

from stepframe import pipeline, step


@step(operator="docker")
def sleepy(seconds: int = 120) -> int:
    print("sleeping", flush=True)
    time.sleep(seconds)
    return seconds


@pipeline
def nap() -> None:
    sleepy()
"""


def test_interrupted_run_leaves_no_container(
    tmp_path: Path, registry: str, base_image: str, engine: docker.DockerClient
) -> None:
    import signal

    project = tmp_path / "napproj"
    project.mkdir()
    (project / "stepframe.toml").write_text(STACK.format(base_image=base_image, registry=registry))
    (project / "nap.py").write_text(SLEEPER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "stepframe", "run", "nap.py"],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        for line in process.stdout:
            seen.append(line)
            if "sleepy | sleeping" in line:
                break
        else:
            pytest.fail("the step never started:\n" + "".join(seen))
        run_id = re.search(r"run (\S+) of pipeline 'nap'", "".join(seen))
        assert run_id is not None, seen
        label: dict[str, Any] = {"label": f"stepframe.run={run_id.group(1)}"}
        assert len(engine.containers.list(filters=label)) == 1
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, "".join(seen) + rest
    assert engine.containers.list(all=True, filters=label) == []


def _operator() -> Component:
    return Component(ComponentKind.STEP_OPERATOR, "docker", "docker", DockerOperatorConfig())


def _launch(image: ImageRef, *command: str) -> Launch:
    name = f"sftest-{uuid.uuid4().hex[:10]}"
    return Launch(
        run_id="sftest",
        pipeline="p",
        step="s",
        attempt=1,
        job_name=name,
        manifest_uri="sftest://no-store/launch.json",  # not file://: nothing to mount
        result_uri="sftest://no-store/result.json",
        command=command,
        image=image,
    )


def _poll_until(
    handle: JobHandle, done: Callable[[JobStatus, list[str]], bool], timeout: float = 60
) -> tuple[JobStatus, list[str]]:
    lines: list[str] = []
    cursor = None
    deadline = time.monotonic() + timeout
    while True:
        status = plugin.poll_step(handle=handle, credentials=None, cursor=cursor)
        assert status is not None
        lines += status.log_lines
        cursor = status.cursor
        if done(status, lines) or time.monotonic() > deadline:
            return status, lines
        time.sleep(0.1)


@pytest.fixture
def image(build: Build, code: Callable[..., Path]) -> ImageRef:
    ref: ImageRef = build(code())[0]
    return ref


def test_logs_exit_status_and_removal(image: ImageRef, engine: docker.DockerClient) -> None:
    from docker.errors import NotFound

    script = textwrap.dedent(
        """\
        import sys, time
        for i in range(3):
            print("line", i, flush=True)
            time.sleep(0.2)
        print("to stderr", file=sys.stderr)
        sys.exit(3)
        """
    )
    handle = plugin.submit_step(
        launch=_launch(image, "python", "-c", script), operator=_operator(), credentials=None
    )
    assert handle is not None and handle.flavor == "docker"
    status, lines = _poll_until(handle, lambda s, _: s.state.is_terminal)
    assert status.state is JobState.FAILED
    assert status.failure_reason == "container exited with status 3"
    assert lines == ["line 0", "line 1", "line 2", "to stderr"]
    with pytest.raises(NotFound):
        engine.containers.get(handle.job_id)


def test_cancel_stops_and_removes_the_container(
    image: ImageRef, engine: docker.DockerClient
) -> None:
    from docker.errors import NotFound

    script = "import time\nprint('ready', flush=True)\ntime.sleep(120)\n"
    handle = plugin.submit_step(
        launch=_launch(image, "python", "-c", script), operator=_operator(), credentials=None
    )
    assert handle is not None
    _, lines = _poll_until(handle, lambda _, seen: "ready" in seen)
    assert lines == ["ready"]
    started = time.monotonic()
    assert plugin.cancel_step(handle=handle, credentials=None) is True
    status, _ = _poll_until(handle, lambda s, _: s.state.is_terminal, timeout=30)
    assert status.state is JobState.CANCELLED
    # SIGTERM reaches the step (no waiting out the 10 s stop timeout).
    assert time.monotonic() - started < 8
    with pytest.raises(NotFound):
        engine.containers.get(handle.job_id)
