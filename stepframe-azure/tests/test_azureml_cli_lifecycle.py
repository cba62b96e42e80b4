"""`stepframe run` with a step on ``azureml``, end to end, then interrupted: Ctrl-C, and
kill -9 then ``--resume``.

All real but AzureML itself: the CLI in its own process; the step's image built by
stepframe-docker and pushed to the registry on 127.0.0.1:5000;
azure-mgmt-machinelearningservices' client creating the command job on the loopback job
service (_azureml_service.py), which runs the job's container on the Docker engine and
serves its log through run history; the artifacts in the ``azure-blob`` store on Azurite,
which the container reaches through the connection string in its environment.

The ``train`` step prints ``training started`` (a log line the CLI shows) and then waits
until the test opens a gate (an HTTP server on 127.0.0.1 that answers 200 once opened; the
container is on the host network), so the test decides when it may end: nothing is timed.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _azureml_service import AzureMLService
from _azurite import ACCOUNT, Azurite
from _docker_host import docker_host  # noqa: F401  (the fixture)

import stepframe_docker
from stepframe.testing import StepframeCli, TempProject, read_until

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-444455556666"

PIPELINE = """
import os, time, urllib.request
from stepframe import pipeline, step


@step
def points() -> list:
    return [[0.0, 1.0], [1.0, 3.0], [2.0, 5.0]]


@step(operator="azureml", settings={{"azureml": {{"environment": {{
    "AZURE_STORAGE_CONNECTION_STRING": "{connection_string}", "GATE_URL": "{gate_url}"}}}}}})
def train(points: list) -> dict:
    print("training started", flush=True)
    while True:  # until the test opens the gate
        try:
            urllib.request.urlopen(os.environ["GATE_URL"], timeout=5).close()
            break
        except OSError:
            time.sleep(0.2)
    (x0, y0), (x1, y1) = points[0], points[-1]
    print("training done", flush=True)
    return {{"slope": (y1 - y0) / (x1 - x0), "points": len(points)}}


@step
def report(model: dict) -> None:
    print(f"slope {{model['slope']}} from {{model['points']}} points")


@pipeline
def fit():
    report(train(points()))
"""

STACK = """
active_stack = "azure"

[connectors.azure]
flavor = "azure"
auth_method = "access-token"
token = "env:LIFECYCLE_AZURE_TOKEN"

[artifact_stores.blob]
flavor = "azure-blob"
path = "az://{account}/{container}/stepframe"

[image_builders.docker]
flavor = "docker"
parent_image = "{base_image}"

[container_registries.local]
flavor = "default"
uri = "{registry}"

[step_operators.azureml]
flavor = "azureml"
connector = "azure"
subscription_id = "{subscription}"
resource_group = "lifecycle-rg"
workspace = "lifecycle-ws"
endpoint = "{service}"
history_endpoint = "{service}"

[stacks.azure]
artifact_store = "blob"
image_builder = "docker"
container_registry = "local"
step_operators = ["azureml"]
"""

# The first build installs the azure libraries into the image.
BUILD_AND_RUN = 600.0


class Gate:
    """``GET /`` answers 404 until `open`, then 200."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if gate.opened.is_set() else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def open(self) -> None:
        self.opened.set()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Lifecycle:
    """The project, its pipeline on the azure stack, and the CLI processes started on it."""

    def __init__(
        self, project: TempProject, azurite: Azurite, service: AzureMLService, gate: Gate
    ) -> None:
        self.project = project
        self.azurite = azurite
        self.service = service
        self.gate = gate
        self.container = azurite.create_container()
        self.processes: list[subprocess.Popen[str]] = []
        # Over this process's environment: the conftest's dead proxy, Azurite's
        # connection string.
        self.cli = StepframeCli(
            project.root, {"LIFECYCLE_AZURE_TOKEN": "lifecycle-token"}, plugins="azure,docker"
        )

    def write(self, host: dict[str, str]) -> Path:
        self.project.write_config(
            STACK.format(
                account=ACCOUNT,
                container=self.container,
                subscription=SUBSCRIPTION,
                service=self.service.url,
                **host,
            )
        )
        return self.project.write(
            PIPELINE.format(
                connection_string=self.azurite.connection_string(), gate_url=self.gate.url
            )
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        process = self.cli.start(*args)
        self.processes.append(process)
        return process

    def the_job(self) -> Any:
        (job,) = self.service.jobs.values()
        return job

    def close(self) -> None:
        for process in self.processes:
            with process:  # then its output is closed and it is waited for
                if process.poll() is None:
                    process.kill()


@pytest.fixture
def lifecycle(
    stepframe_project: TempProject,
    docker_host: dict[str, str],  # noqa: F811
    azurite: Azurite,
    azureml_service: AzureMLService,
) -> Iterator[tuple[Lifecycle, Path]]:
    stepframe_docker.forget_builds()
    gate = Gate()
    running = Lifecycle(stepframe_project, azurite, azureml_service, gate)
    pipeline = running.write(docker_host)
    try:
        yield running, pipeline
    finally:
        gate.open()  # a container still waiting ends by itself
        running.close()
        gate.close()


def finish(process: subprocess.Popen[str], timeout: float = BUILD_AND_RUN) -> str:
    assert process.stdout is not None
    out = process.stdout.read()
    process.wait(timeout=timeout)
    return out


def stored_names(running: Lifecycle) -> list[str]:
    container = running.azurite.service().get_container_client(running.container)
    return [blob.name for blob in container.list_blobs()]


def test_a_pipeline_runs_its_train_step_on_azureml_end_to_end(
    lifecycle: tuple[Lifecycle, Path],
) -> None:
    running, pipeline = lifecycle
    running.gate.open()
    process = running.start("run", str(pipeline))
    out = finish(process)

    assert process.returncode == 0, out
    assert "training started" in out and "training done" in out, out  # the job's log
    assert "slope 2.0 from 3 points" in out, out  # train's output, back through Azurite
    job = running.the_job()
    assert job.status == "Completed"
    assert job.statuses[:2] == ["NotStarted", "Queued"] and "Running" in job.statuses
    (body,) = running.service.created_bodies()
    assert body["properties"]["command"].startswith("python -m stepframe.entrypoint az://")
    ((run_id, status),) = running.project.runs()
    assert status == "succeeded"
    (record,) = [row for row in running.project.jobs(run_id) if row["step"] == "train"]
    assert (record["flavor"], record["job_id"], record["state"]) == (
        "azureml",
        job.name,
        "succeeded",
    )
    names = stored_names(running)
    assert any(name.startswith(f"stepframe/runs/{run_id}/train/") for name in names), names


def test_ctrl_c_cancels_the_azureml_job(lifecycle: tuple[Lifecycle, Path]) -> None:
    running, pipeline = lifecycle
    process = running.start("run", str(pipeline))
    before = read_until(process, "training started")

    process.send_signal(signal.SIGINT)
    out = finish(process, timeout=120)

    assert process.returncode == 130, "\n".join(before) + out
    assert "Traceback" not in out, out
    assert "slope" not in out
    job = running.the_job()
    assert running.service.calls("cancel") == 1
    assert job.cancelled.is_set() and "CancelRequested" in job.statuses
    ((run_id, status),) = running.project.runs()
    assert status == "cancelled"
    (record,) = [row for row in running.project.jobs(run_id) if row["step"] == "train"]
    assert (record["job_id"], record["state"]) == (job.name, "cancelled")


def test_kill_9_then_resume_reattaches_to_the_running_job(
    lifecycle: tuple[Lifecycle, Path],
) -> None:
    running, pipeline = lifecycle
    killed = running.start("run", str(pipeline))
    read_until(killed, "training started")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    job = running.the_job()
    assert job.status == "Running"  # the job outlived its client
    ((run_id, _),) = running.project.runs()

    resumed = running.start("run", "--resume", run_id)
    lines = read_until(resumed, "re-attached to azureml job")
    running.gate.open()
    out = "\n".join(lines) + finish(resumed)

    assert resumed.returncode == 0, out
    assert "slope 2.0 from 3 points" in out, out
    assert len(running.service.created_bodies()) == 1  # followed, never created again
    assert job.status == "Completed"
    assert running.project.runs() == [(run_id, "succeeded")]
    trains = [row for row in running.project.jobs(run_id) if row["step"] == "train"]
    assert [(row["attempt"], row["state"]) for row in trains] == [(1, "succeeded")]
