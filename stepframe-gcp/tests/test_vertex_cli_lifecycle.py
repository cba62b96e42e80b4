"""`stepframe run` with a step on ``vertex``, interrupted: Ctrl-C, and kill -9 then --resume.

All real but Vertex AI itself: the CLI in its own process, its image built by
stepframe-docker and pushed to the registry on 127.0.0.1:5000, google-api-python-client
talking to the loopback job service (_vertex_service.py), which runs the chief's container
on the Docker engine, and the artifacts on fake-gcs-server.  The ``train`` step says
``training started`` (a Cloud Logging line the CLI prints) and then waits for an object
``go`` in the bucket, so the test decides when it may end: nothing is timed.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _vertex_service import VertexService
from conftest import FakeGcs

import stepframe_docker
from stepframe.testing import StepframeCli, TempProject, read_until

PIPELINE = """
import os, time, urllib.request
from stepframe import pipeline, step


@step
def points() -> list:
    return [[0.0, 1.0], [1.0, 3.0], [2.0, 5.0]]


@step(operator="vertex", settings={{"vertex": {{"environment": {{
    "STORAGE_EMULATOR_HOST": "{emulator}", "GO_URL": "{go_url}"}}}}}})
def train(points: list) -> dict:
    print("training started", flush=True)
    while True:  # until the test puts the object `go`
        try:
            urllib.request.urlopen(os.environ["GO_URL"], timeout=5).close()
            break
        except OSError:
            time.sleep(0.2)
    (x0, y0), (x1, y1) = points[0], points[-1]
    return {{"slope": (y1 - y0) / (x1 - x0), "points": len(points)}}


@step
def report(model: dict) -> None:
    print(f"slope {{model['slope']}} from {{model['points']}} points")


@pipeline
def fit():
    report(train(points()))
"""

STACK = """
active_stack = "vertex"

[connectors.gcp]
flavor = "gcp"
auth_method = "oauth2-token"
token = "env:LIFECYCLE_GCP_TOKEN"
project = "test-project"
region = "europe-west4"

[artifact_stores.gcs]
flavor = "gcs"
path = "gs://{bucket}/stepframe"
connector = "gcp"

[image_builders.docker]
flavor = "docker"
parent_image = "{base_image}"

[container_registries.local]
flavor = "default"
uri = "{registry}"

[step_operators.vertex]
flavor = "vertex"
connector = "gcp"
project = "test-project"
region = "europe-west4"
api_endpoint = "{service}"
logging_endpoint = "{service}"

[stacks.vertex]
artifact_store = "gcs"
image_builder = "docker"
container_registry = "local"
step_operators = ["vertex"]
"""

# The first build installs the google libraries into the image.
BUILD_AND_RUN = 600.0


class Lifecycle:
    """The project, its pipeline on the vertex stack, and the CLI started on it."""

    def __init__(self, project: TempProject, gcs: FakeGcs, service: VertexService) -> None:
        self.project = project
        self.gcs = gcs
        self.service = service
        self.bucket = gcs.create_bucket()
        self.processes: list[subprocess.Popen[str]] = []
        self.cli = StepframeCli(
            project.root, {"LIFECYCLE_GCP_TOKEN": "ya29.lifecycle"}, plugins="gcp,docker"
        )

    def write(self, host: dict[str, str]) -> Path:
        self.project.write_config(
            STACK.format(bucket=self.bucket, service=self.service.url, **host)
        )
        go_url = f"{self.gcs.url}/storage/v1/b/{self.bucket}/o/go"
        return self.project.write(PIPELINE.format(emulator=self.gcs.url, go_url=go_url))

    def start(self, *args: str) -> subprocess.Popen[str]:
        process = self.cli.start(*args)
        self.processes.append(process)
        return process

    def let_train_end(self) -> None:
        self.gcs.put(self.bucket, "go", b"")

    def close(self) -> None:
        for process in self.processes:
            with process:  # then its output is closed and it is waited for
                if process.poll() is None:
                    process.kill()


@pytest.fixture
def lifecycle(
    stepframe_project: TempProject,
    docker_host: dict[str, str],
    gcs: FakeGcs,
    vertex_service: VertexService,
) -> Iterator[tuple[Lifecycle, Path]]:
    stepframe_docker.forget_builds()
    running = Lifecycle(stepframe_project, gcs, vertex_service)
    pipeline = running.write(docker_host)
    try:
        yield running, pipeline
    finally:
        running.let_train_end()  # a container still waiting ends by itself
        running.close()


def the_job(service: VertexService) -> Any:
    (job,) = service.jobs.values()
    return job


def finish(process: subprocess.Popen[str], timeout: float = BUILD_AND_RUN) -> str:
    assert process.stdout is not None
    out = process.stdout.read()
    process.wait(timeout=timeout)
    return out


def test_ctrl_c_cancels_the_vertex_job(lifecycle: tuple[Lifecycle, Path]) -> None:
    running, pipeline = lifecycle
    process = running.start("run", str(pipeline))
    before = read_until(process, "training started")

    process.send_signal(signal.SIGINT)
    out = finish(process, timeout=120)

    assert process.returncode == 130, "\n".join(before) + out
    assert "Traceback" not in out, out
    job = the_job(running.service)
    assert [kind for kind, _, _ in running.service.requests].count("cancel") == 1
    # The service kills the container, then says CANCELLED once it has exited.
    assert job.cancelled.is_set()
    (run_id, status) = running.project.runs()[0]
    assert status == "cancelled"
    (record,) = [row for row in running.project.jobs(run_id) if row["step"] == "train"]
    assert (record["flavor"], record["job_id"], record["state"]) == (
        "vertex",
        job.name,
        "cancelled",
    )
    assert "slope" not in out


def test_kill_9_then_resume_reattaches_to_the_running_job(
    lifecycle: tuple[Lifecycle, Path],
) -> None:
    running, pipeline = lifecycle
    killed = running.start("run", str(pipeline))
    read_until(killed, "training started")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    job = the_job(running.service)
    assert job.state == "JOB_STATE_RUNNING"  # the job outlived its client
    ((run_id, _),) = running.project.runs()

    resumed = running.start("run", "--resume", run_id)
    lines = read_until(resumed, "re-attached to vertex job")
    running.let_train_end()
    out = "\n".join(lines) + finish(resumed)

    assert resumed.returncode == 0, out
    assert "slope 2.0 from 3 points" in out, out
    assert len(running.service.created_bodies()) == 1  # followed, never created again
    assert job.state == "JOB_STATE_SUCCEEDED"
    assert running.project.runs() == [(run_id, "succeeded")]
    trains = [row for row in running.project.jobs(run_id) if row["step"] == "train"]
    assert [(row["attempt"], row["state"]) for row in trains] == [(1, "succeeded")]
