"""Local mode (``machine_type = "local"``): the CustomJob's own container spec, run on the
user's Docker engine by stepframe-docker's ``docker`` operator.

The body is built exactly as for Vertex AI (`custom_job_body`), then its chief's container
spec -- image by digest, command, environment -- is what runs, with the ``CLUSTER_SPEC``
Vertex AI would give a one-replica job.  Submit, poll (the container's log with a byte
cursor), cancel and find are the docker operator's, through its hook implementations; the
handle stays a ``vertex`` handle that carries the docker one, so ``stepframe jobs`` and
resumed runs find it like any vertex job.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from stepframe import Component, ComponentKind, JobHandle, JobNotFound, JobStatus, Launch
from stepframe_gcp._vertex.config import FLAVOR, VertexOperatorConfig, VertexSettings
from stepframe_gcp._vertex.request import custom_job_body

__all__ = ["LOCAL_MACHINE", "cancel", "find", "is_local", "poll", "submit"]

LOCAL_MACHINE = "local"
_CLUSTER_SPEC = json.dumps(
    {
        "cluster": {"workerpool0": ["localhost:2222"]},
        "environment": "cloud",
        "task": {"type": "workerpool0", "index": 0},
    }
)


def is_local(handle: JobHandle) -> bool:
    return bool(handle.data.get("local"))


def _docker_operator(operator_name: str) -> Component:
    from stepframe_docker import DockerOperatorConfig

    return Component(ComponentKind.STEP_OPERATOR, operator_name, "docker", DockerOperatorConfig())


def _docker_launch(
    launch: Launch, settings: VertexSettings, config: VertexOperatorConfig
) -> Launch:
    from stepframe_docker import DockerSettings

    body = custom_job_body(launch, settings, config)
    container = body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
    environment = {item["name"]: item["value"] for item in container["env"]}
    environment["CLUSTER_SPEC"] = _CLUSTER_SPEC
    # Like a job on Vertex AI, the container gets no credentials from the client: it
    # reaches the store with what its environment gives it.
    return attrs.evolve(
        launch,
        command=tuple(container["command"]),
        environment=environment,
        settings=DockerSettings(),
        store_credentials=None,
    )


def _wrap(handle: JobHandle, operator: Component) -> JobHandle:
    return JobHandle(
        flavor=FLAVOR,
        operator=operator.name,
        job_id=handle.job_id,
        data={"local": True, "docker_operator": handle.operator, "docker": dict(handle.data)},
    )


def _unwrap(handle: JobHandle) -> JobHandle:
    return JobHandle(
        "docker", str(handle.data["docker_operator"]), handle.job_id, handle.data["docker"]
    )


def submit(
    launch: Launch, operator: Component, settings: VertexSettings, config: VertexOperatorConfig
) -> JobHandle:
    from stepframe_docker import plugin as docker

    docker_operator = _docker_operator(operator.name)
    handle = docker.submit_step(_docker_launch(launch, settings, config), docker_operator, None)
    assert handle is not None
    return _wrap(handle, operator)


def poll(handle: JobHandle, cursor: str | None) -> JobStatus:
    from stepframe_docker import plugin as docker

    status = docker.poll_step(_unwrap(handle), None, cursor)
    assert status is not None
    return attrs.evolve(status, detail=f"local mode {status.detail}".strip())


def cancel(handle: JobHandle) -> bool:
    from stepframe_docker import plugin as docker

    return bool(docker.cancel_step(_unwrap(handle), None))


def find(
    launch: Launch, operator: Component, settings: VertexSettings, config: VertexOperatorConfig
) -> JobHandle | JobNotFound | None:
    from stepframe_docker import plugin as docker

    found: Any = docker.find_job(
        _docker_launch(launch, settings, config), _docker_operator(operator.name), None
    )
    if isinstance(found, JobHandle):
        return _wrap(found, operator)
    return found  # type: ignore[no-any-return]
