"""``instance_type = "local"``: a step as a SageMaker training job in the SDK's local mode.

The SageMaker SDK (v2, the ``local`` extra) runs the step's image on this machine's
Docker engine through Docker Compose, the way SageMaker would run it: the same entry
point (``python -m stepframe.entrypoint MANIFEST_URI``), ``/opt/ml`` laid out the same,
input channels downloaded, and the session's credentials passed to the container the
way a training job gets its role's (stepframe adds no client credentials to the job's
environment; the SDK does, from the session, because there is no job role locally).

`submit_local` returns at once: it writes a spec and starts `local_runner` as a
detached process in a session of its own, whose output is the job's log and which
writes ``status.json`` when the job ends.  The SDK is imported in that process only.
Everything of one job lives in ``WORKDIR/sagemaker-local/JOB_NAME/``:

- ``spec.json``: what the runner runs (no secrets);
- ``runner.log``: the SDK's and the container's output, which `poll_local` tails from
  a byte offset (the cursor);
- ``runner.json``: the runner's PID and start time, for a later submit of the same job;
- ``status.json``: the outcome (``succeeded``, ``failed`` with a reason, ``cancelled``);
- ``cancelled``: a cancel was asked for;
- ``output/``: SageMaker's job output (``model.tar.gz``), unless the operator sets
  ``output_path``; ``containers/``: the SDK's container root while the job runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stepframe import (
    Component,
    Credentials,
    JobHandle,
    JobState,
    JobStatus,
    Launch,
    StepframeError,
)
from stepframe.support import process_is_running, process_start_ticks, read_log_lines
from stepframe_aws._sagemaker.config import FLAVOR, SageMakerOperatorConfig, SageMakerSettings
from stepframe_aws._sagemaker.request import image_by_digest, training_job_name

__all__ = [
    "COMPOSE_MISSING",
    "JOB_LABEL",
    "SDK_MISSING",
    "cancel_local",
    "compose_available",
    "job_dir_of",
    "poll_local",
    "remove_job_containers",
    "submit_local",
]

MODE = "local"
RUNNER_MODULE = "stepframe_aws._sagemaker.local_runner"
SDK_MISSING = "instance_type local needs the SageMaker SDK: pip install 'stepframe-aws[local]'"
COMPOSE_MISSING = (
    "instance_type local needs Docker Compose to run the job's container: install the "
    "`docker compose` plugin (Compose v2) or `docker-compose`"
)
# Containers of the job carry JOB_LABEL=<launch.job_name> (see local_runner).
JOB_LABEL = "stepframe.job"
MODE_LABEL = "stepframe.sagemaker-local"
# Runners started by this process, so their exit is collected (no zombies).
_children: dict[int, subprocess.Popen[bytes]] = {}


class LocalModeError(StepframeError):
    """SageMaker local mode cannot run here (no SDK, no Compose, no image)."""


def job_dir_of(launch: Launch) -> Path:
    return Path(launch.workdir).resolve() / "sagemaker-local" / launch.job_name


def _image_references(launch: Launch) -> list[str]:
    """The image by digest (what SageMaker would run) when it has one, then as tagged:
    the runner takes the first that the local engine has."""
    if launch.image is None:
        raise LocalModeError(
            f"step {launch.step!r}: the sagemaker operator needs an image, and none was built; "
            "add an image builder to the stack"
        )
    image = launch.image
    references = []
    if image.digest and image.digest.startswith("sha256:"):
        references.append(image_by_digest(image))
    if image.uri not in references:
        references.append(image.uri)
    return references


def compose_available() -> bool:
    """Whether Docker Compose is here: ``docker-compose`` or the ``docker compose`` v2
    plugin (the SDK's local mode runs the job's container through it)."""
    if shutil.which("docker-compose") is not None:
        return True
    try:
        output = subprocess.run(
            ["docker", "compose", "version"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "v2" in output


def _check_tools() -> None:
    """Fail at submit, with the fix, when the runner could not work."""
    if importlib.util.find_spec("sagemaker") is None:
        raise LocalModeError(SDK_MISSING)
    if not compose_available():
        raise LocalModeError(COMPOSE_MISSING)


def _region(config: SageMakerOperatorConfig, credentials: Credentials | None) -> str | None:
    values = credentials.values if credentials is not None else {}
    return (
        config.region
        or values.get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or None
    )


def _s3_endpoint(credentials: Credentials | None) -> str | None:
    values = credentials.values if credentials is not None else {}
    return (
        values.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def _runner_environment(credentials: Credentials | None) -> dict[str, str]:
    """This process's environment, with the connector's credentials when there are some
    (the runner's boto3 session, and so the SDK, signs with them)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # stepframe chose the 2.x line on purpose (3.x has no container entry point).
    env.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    if credentials is None:
        return env
    values = credentials.fresh().values
    if "aws_access_key_id" not in values:
        return env
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN"):
        env.pop(name, None)
    env["AWS_ACCESS_KEY_ID"] = values["aws_access_key_id"]
    env["AWS_SECRET_ACCESS_KEY"] = values["aws_secret_access_key"]
    if values.get("aws_session_token"):
        env["AWS_SESSION_TOKEN"] = values["aws_session_token"]
    return env


def _alive(pid: int, start_ticks: str | None) -> bool:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
        return False
    return process_is_running(pid, start_ticks)


def _handle(operator: Component, name: str, folder: Path, runner: Mapping[str, Any]) -> JobHandle:
    return JobHandle(
        flavor=FLAVOR,
        operator=operator.name,
        job_id=name,
        data={
            "mode": MODE,
            "job": str(runner["job"]),
            "dir": str(folder),
            "log": str(folder / "runner.log"),
            "status": str(folder / "status.json"),
            "pid": int(runner["pid"]),
            "start_ticks": runner.get("start_ticks"),
            "started_at": runner.get("started_at"),
        },
    )


def submit_local(
    launch: Launch,
    operator: Component,
    settings: SageMakerSettings,
    credentials: Credentials | None,
) -> JobHandle:
    """Start the job in the SDK's local mode and return its handle at once."""
    config: SageMakerOperatorConfig = operator.config
    _check_tools()
    references = _image_references(launch)
    name = training_job_name(launch.job_name)
    folder = job_dir_of(launch)
    runner_file = folder / "runner.json"
    # The same job submitted again while its runner still runs: that one is the job.
    with contextlib.suppress(OSError, ValueError, KeyError):
        runner = json.loads(runner_file.read_text())
        if (
            _alive(int(runner["pid"]), runner.get("start_ticks"))
            and not (folder / "status.json").exists()
        ):
            return _handle(operator, name, folder, runner)
    if folder.exists():  # an earlier attempt of this very job name: start afresh
        shutil.rmtree(folder)
    folder.mkdir(parents=True, mode=0o700)
    if config.local_container_root:
        container_root = Path(config.local_container_root).resolve() / launch.job_name
    else:
        container_root = folder / "containers"
    output_path = config.output_path or (folder / "output").as_uri()
    environment = {
        **(config.environment or {}),
        **settings.environment,
        **launch.environment,
        "PYTHONUNBUFFERED": "1",
    }
    spec = {
        "job_name": name,
        "stepframe_job": launch.job_name,
        "images": references,
        "role": config.execution_role,
        "region": _region(config, credentials),
        "s3_endpoint_url": _s3_endpoint(credentials),
        "environment": environment,
        "entry_point": _entry_point(launch, settings),
        # The SDK's local mode runs one container per instance (algo-1, algo-2...), each
        # with SageMaker's resourceconfig.json: only the first writes the outputs.
        "instance_count": settings.instance_count,
        "inputs": dict(settings.input_channels) or None,
        "output_path": output_path,
        "container_root": str(container_root),
        "labels": {
            JOB_LABEL: launch.job_name,
            MODE_LABEL: name,
            "stepframe.run": launch.run_id,
            "stepframe.step": launch.step,
        },
        "status_path": str(folder / "status.json"),
    }
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    with open(folder / "runner.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", RUNNER_MODULE, str(spec_path)],
            cwd=str(folder),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_runner_environment(credentials),
            # Its own session: Ctrl-C in the terminal is not for it, it outlives this
            # process (a resumed run finds it), and a cancel stops its process group.
            start_new_session=True,
        )
    _children[process.pid] = process
    runner = {
        "pid": process.pid,
        "start_ticks": process_start_ticks(process.pid),
        "started_at": time.time(),
        "job": launch.job_name,
    }
    runner_file.write_text(json.dumps(runner))
    return _handle(operator, name, folder, runner)


def _entry_point(launch: Launch, settings: SageMakerSettings) -> list[str]:
    """The launch's command, with the entrypoint's torchrun options when the step is
    distributed that way (as the remote request's ContainerEntrypoint has them)."""
    command = list(launch.command)
    if settings.distribution != "torchrun" or len(command) < 4:
        return command
    options = ["--torchrun"]
    if settings.processes_per_host is not None:
        options.append(f"--processes-per-host={settings.processes_per_host}")
    return [*command[:3], *options, *command[3:]]


def _status(handle: JobHandle) -> dict[str, Any] | None:
    try:
        record = json.loads(Path(str(handle.data["status"])).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def poll_local(handle: JobHandle, cursor: str | None) -> JobStatus:
    """The job's state, from the runner's status file or whether it still runs, and the
    log lines after ``cursor`` (a byte offset into the runner's log)."""
    data = handle.data
    record = _status(handle)
    running = record is None and _alive(int(data["pid"]), data.get("start_ticks"))
    if record is None and not running:
        # The status is written just before the runner exits: read it once more.
        record = _status(handle)
    ended = not running
    # Compose colours each container's lines, even into a file.
    lines, offset = read_log_lines(str(data["log"]), int(cursor or 0), final=ended, clean=True)
    if running:
        return JobStatus(JobState.RUNNING, lines, str(offset), detail="local mode", poll_after=0.5)
    cancelled = Path(str(data["dir"]), "cancelled").exists()
    if record is None:
        if cancelled:
            return JobStatus(JobState.CANCELLED, lines, str(offset), detail="local mode")
        return JobStatus(
            JobState.FAILED,
            lines,
            str(offset),
            detail="local mode",
            failure_reason=(
                f"the SageMaker local-mode runner (PID {data['pid']}) ended without a status; "
                f"see {data['log']}"
            ),
        )
    state = {
        "succeeded": JobState.SUCCEEDED,
        "cancelled": JobState.CANCELLED,
    }.get(str(record.get("state")), JobState.FAILED)
    if cancelled and state is not JobState.SUCCEEDED:
        state = JobState.CANCELLED
    reason = None if state is JobState.SUCCEEDED else record.get("reason")
    return JobStatus(state, lines, str(offset), detail="local mode", failure_reason=reason)


def cancel_local(handle: JobHandle) -> bool:
    """Stop the runner's process group (the SDK and Compose) and the job's containers."""
    data = handle.data
    if _status(handle) is not None:
        return True  # it has ended already
    with contextlib.suppress(OSError):
        Path(str(data["dir"]), "cancelled").write_text(f"{time.time()}\n")
    pid = int(data["pid"])
    if _alive(pid, data.get("start_ticks")):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    remove_job_containers(str(data.get("job") or handle.job_id))
    return True


def remove_job_containers(job: str, say: Callable[[str], None] | None = None) -> list[str]:
    """Kill and remove the job's containers (they run under the engine, not the runner;
    the SDK leaves exited ones behind).

    :param job: the launch's job name, on the containers' `JOB_LABEL`.
    :param say: told about each container that could not be removed (already gone, or
        being removed by a cancel meanwhile).
    :return: the names of the containers removed.
    """
    try:
        import docker

        client = docker.from_env()
        containers = client.containers.list(all=True, filters={"label": f"{JOB_LABEL}={job}"})
    except Exception:  # no engine, or none of them: nothing to stop
        return []
    removed = []
    for container in containers:
        try:
            container.remove(force=True)
            removed.append(str(container.name))
        except Exception as error:
            if say is not None:
                say(f"stepframe: could not remove container {container.name}: {error}")
    return removed
