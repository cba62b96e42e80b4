"""The docker operator when the Docker engine goes away during a step (issue 10, item 11).

The machine's own engine is shared with other tests, so it is never stopped: the operator
talks to it through a unix-socket proxy that a test cuts (listener and every open
connection closed, socket file gone, as when dockerd stops) and restores.  The real
engine, reached directly, plays what dockerd does meanwhile (stopping a container) and
checks what is left behind.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from stepframe import (
    Component,
    ComponentKind,
    ImageRef,
    JobHandle,
    JobNotFound,
    JobState,
    JobStatus,
    Launch,
    SubmitAmbiguousError,
)
from stepframe_docker import BuildReport, DockerOperatorConfig, EngineUnavailableError, plugin

if TYPE_CHECKING:
    import docker
    from conftest import DockerProject

Build = Callable[..., tuple[ImageRef, BuildReport]]
ENGINE_SOCKET = "/var/run/docker.sock"


class EngineProxy:
    """A byte-for-byte forwarder from a socket of its own to the real engine's socket."""

    def __init__(self, path: Path, target: str = ENGINE_SOCKET) -> None:
        self.path = path
        self.target = target
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._drop_answer_to: re.Pattern[bytes] | None = None

    def drop_answer_to(self, request: bytes) -> None:
        """Pass the next request matching ``request`` (a regex on its first bytes) on to
        the engine, then close the connection instead of passing back the answer."""
        with self._lock:
            self._drop_answer_to = re.compile(request)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """The engine is gone: no listener, no socket file, every connection closed."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
        assert listener is not None, "the proxy is not running"
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        self.path.unlink()
        for connection in connections:
            _close(connection)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._connections.update((client, upstream))
            answer_lost = threading.Event()
            threading.Thread(
                target=self._requests, args=(client, upstream, answer_lost), daemon=True
            ).start()
            threading.Thread(
                target=_answers, args=(upstream, client, answer_lost), daemon=True
            ).start()

    def _requests(
        self, client: socket.socket, upstream: socket.socket, answer_lost: threading.Event
    ) -> None:
        def watch(data: bytes) -> None:
            with self._lock:
                pattern = self._drop_answer_to
                if pattern is not None and pattern.match(data):
                    self._drop_answer_to = None
                    answer_lost.set()

        _pump(client, upstream, watch)


def _answers(upstream: socket.socket, client: socket.socket, answer_lost: threading.Event) -> None:
    def drop(data: bytes) -> None:
        if answer_lost.is_set():
            raise OSError("the answer is lost on the way")

    _pump(upstream, client, drop)


def _pump(source: socket.socket, sink: socket.socket, before: Callable[[bytes], None]) -> None:
    try:
        while data := source.recv(65536):
            before(data)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _close(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    connection.close()


@pytest.fixture
def proxy(
    tmp_path_factory: pytest.TempPathFactory, engine: docker.DockerClient
) -> Iterator[EngineProxy]:
    # A short path: unix socket paths are limited to 107 bytes.
    folder = Path(tmp_path_factory.mktemp("engine"))
    running = EngineProxy(folder / "docker.sock")
    running.start()
    yield running
    with running._lock:
        listener = running._listener
    if listener is not None:
        running.cut()


def _containers(engine: docker.DockerClient, label: str) -> list[str]:
    return [str(c.name) for c in engine.containers.list(all=True, filters={"label": label})]


# ---- through `stepframe run`: one clear line, no traceback, and --resume cleans up ----

GATED = """\
import time
from pathlib import Path

from stepframe import pipeline, step

GATE = Path("/gate")


@step(operator="docker", settings={{"docker": {{"volumes": ["{gate}:/gate"]}}}})
def guarded() -> int:
    with open(GATE / "runs", "a") as runs:
        runs.write("ran\\n")
    print("waiting for the gate", flush=True)
    while not (GATE / "open").exists():
        time.sleep(0.05)
    return 7


@pipeline
def gated() -> None:
    guarded()
"""


def test_engine_lost_during_a_run_then_resume_finishes_and_removes_the_container(
    tmp_path: Path,
    engine: docker.DockerClient,
    proxy: EngineProxy,
    docker_project: Callable[..., DockerProject],
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    gate.chmod(0o777)
    project = docker_project(
        {"gated.py": GATED.format(gate=gate)},
        env={"DOCKER_HOST": proxy.url},
        engine_retries=2,
        engine_retry_seconds=0.2,
    )
    process = project.start("run", "gated.py")
    try:
        seen = project.read_until(process, "guarded | waiting for the gate")
        found = re.search(r"run (\S+) of pipeline 'gated'", seen)
        assert found is not None, seen
        run_id = found.group(1)
        label = f"stepframe.run={run_id}"
        proxy.cut()
        # While the engine is out of reach the step finishes: its container outlives the blip.
        (gate / "open").touch()
        rest, errors = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    output = seen + rest
    assert process.returncode == 1, output + errors
    fix = f"Start the Docker engine (dockerd) and run `stepframe run --resume {run_id}`"
    assert "EngineUnavailableError" in output + errors and fix in output + errors, output + errors
    assert f"there is no socket at {proxy.path}" in output + errors
    for text in (output, errors):
        assert "Traceback" not in text and "Exception in thread" not in text, text
    # Left behind until the engine answers again.
    assert _containers(engine, label), "the container should outlive the lost engine"

    proxy.start()
    resumed = project.stepframe("run", "--resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Traceback" not in resumed.stdout + resumed.stderr, resumed.stderr
    assert _containers(engine, label) == []
    # Re-attached, not run again.
    assert (gate / "runs").read_text() == "ran\n"


# ---- through the hooks: a poll gives one clear error; the engine back, the container goes ----


def _operator(docker_host: str, **config: Any) -> Component:
    return Component(
        ComponentKind.STEP_OPERATOR,
        "docker",
        "docker",
        DockerOperatorConfig(docker_host=docker_host, **config),
    )


def _launch(image: ImageRef, workdir: Path, *command: str) -> Launch:
    return Launch(
        run_id="sftest-outage",
        pipeline="p",
        step="s",
        attempt=1,
        job_name=f"sftest-{uuid.uuid4().hex[:10]}",
        manifest_uri="sftest://no-store/launch.json",  # not file://: nothing to mount
        result_uri="sftest://no-store/result.json",
        command=command,
        image=image,
        workdir=str(workdir),
    )


def _poll(handle: JobHandle, cursor: str | None = None) -> JobStatus:
    status = plugin.poll_step(handle=handle, credentials=None, cursor=cursor)
    assert status is not None
    return status


def _poll_until_line(handle: JobHandle, wanted: str) -> str | None:
    cursor = None
    for _ in range(600):  # bounded; each poll waits for nothing but the engine
        status = _poll(handle, cursor)
        cursor = status.cursor
        if wanted in status.log_lines or status.state.is_terminal:
            assert wanted in status.log_lines, status
            return cursor
        threading.Event().wait(0.1)
    pytest.fail(f"{wanted!r} never came")


@pytest.fixture
def image(build: Build, code: Callable[..., Path]) -> ImageRef:
    ref: ImageRef = build(code())[0]
    return ref


def _in_another_process(
    code: str, handle: JobHandle, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), json.dumps(attrs.asdict(handle))],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_poll_waits_out_a_blip_then_gives_one_error_and_the_container_is_reaped(
    image: ImageRef, engine: docker.DockerClient, proxy: EngineProxy, tmp_path: Path
) -> None:
    operator = _operator(proxy.url, engine_retries=1, engine_retry_seconds=0.1)
    script = "import time\nprint('ready', flush=True)\ntime.sleep(300)\n"
    handle = plugin.submit_step(
        launch=_launch(image, tmp_path, "python", "-c", script), operator=operator, credentials=None
    )
    assert handle is not None
    cursor = _poll_until_line(handle, "ready")

    proxy.cut()
    # The engine stops: dockerd stops its containers as it goes.
    engine.containers.get(handle.job_id).kill()
    # A blip is waited out in the last known state, saying why...
    waiting = _poll(handle, cursor)
    assert waiting.state is JobState.RUNNING
    assert "the Docker engine does not answer" in waiting.detail
    assert waiting.poll_after == pytest.approx(0.1)
    # ...then one clear error with the fix.
    with pytest.raises(EngineUnavailableError) as raised:
        _poll(handle, cursor)
    message = str(raised.value)
    assert f"there is no socket at {proxy.path}" in message
    assert "Start the Docker engine (dockerd) and run `stepframe run --resume sftest-outage`" in (
        message
    )
    # Cancelling meanwhile says the same kind of thing, in one line.
    with pytest.raises(
        EngineUnavailableError,
        match=r"cannot stop container .*start the Docker engine \(dockerd\) and try again",
    ):
        plugin.cancel_step(handle=handle, credentials=None)
    assert engine.containers.get(handle.job_id).status == "exited"

    proxy.start()
    # The next process that talks to the engine for this project removes it (here: a
    # submit of another job), and a later poll still says how the job ended.
    submitter = _in_another_process(
        """
        import json, sys
        from pathlib import Path
        from stepframe import Component, ComponentKind, ImageRef, JobHandle, Launch
        from stepframe_docker import DockerOperatorConfig, plugin

        old = JobHandle(**json.loads(sys.argv[1]))
        operator = Component(
            ComponentKind.STEP_OPERATOR, "docker", "docker",
            DockerOperatorConfig(docker_host=old.data["docker_host"]),
        )
        launch = Launch(
            run_id="sftest-outage", pipeline="p", step="t", attempt=1, job_name="{}",
            manifest_uri="sftest://x/launch.json", result_uri="sftest://x/result.json",
            command=("true",), image=ImageRef({!r}, {!r}), workdir={!r},
        )
        new = plugin.submit_step(launch=launch, operator=operator, credentials=None)
        print(plugin.poll_step(handle=old, credentials=None, cursor=None))
        """.format(f"sftest-{uuid.uuid4().hex[:10]}", image.uri, image.digest, str(tmp_path)),
        handle,
    )
    assert submitter.returncode == 0, submitter.stderr
    from docker.errors import NotFound

    with pytest.raises(NotFound):
        engine.containers.get(handle.job_id)
    assert "state=<JobState.FAILED" in submitter.stdout, submitter.stdout
    assert "status 137 while the Docker engine was not answering" in submitter.stdout


# ---- a submit whose answer is lost: ambiguous, and find_job settles it ----


def test_a_lost_answer_to_start_is_ambiguous_and_find_job_adopts_the_container(
    image: ImageRef, engine: docker.DockerClient, proxy: EngineProxy, tmp_path: Path
) -> None:
    operator = _operator(proxy.url)
    launch = _launch(image, tmp_path, "python", "-c", "print('ran', flush=True)")
    proxy.drop_answer_to(rb"POST \S*/containers/\S+/start ")
    with pytest.raises(SubmitAmbiguousError, match=launch.job_name):
        plugin.submit_step(launch=launch, operator=operator, credentials=None)
    found = plugin.find_job(launch=launch, operator=operator, credentials=None)
    assert isinstance(found, JobHandle), found
    assert found.job_id == engine.containers.get(launch.job_name).id
    status = _poll(found)
    cursor = status.cursor
    lines = list(status.log_lines)
    for _ in range(600):
        if status.state.is_terminal:
            break
        threading.Event().wait(0.1)
        status = _poll(found, cursor)
        cursor = status.cursor
        lines += status.log_lines
    assert status.state is JobState.SUCCEEDED and lines == ["ran"], (status, lines)


def test_a_lost_answer_to_create_leaves_no_container_that_never_ran(
    image: ImageRef, engine: docker.DockerClient, proxy: EngineProxy, tmp_path: Path
) -> None:
    from docker.errors import NotFound

    operator = _operator(proxy.url)
    launch = _launch(image, tmp_path, "python", "-c", "print('ran')")
    proxy.drop_answer_to(rb"POST \S*/containers/create")
    with pytest.raises(SubmitAmbiguousError):
        plugin.submit_step(launch=launch, operator=operator, credentials=None)
    assert engine.containers.get(launch.job_name).status == "created"
    found = plugin.find_job(launch=launch, operator=operator, credentials=None)
    assert isinstance(found, JobNotFound), found
    assert "never started" in found.reason
    with pytest.raises(NotFound):
        engine.containers.get(launch.job_name)
    # With no engine at all, nothing can be told: neither found nor absent.
    proxy.cut()
    assert plugin.find_job(launch=launch, operator=operator, credentials=None) is None
    with pytest.raises(EngineUnavailableError, match="no socket"):
        plugin.submit_step(launch=launch, operator=operator, credentials=None)
