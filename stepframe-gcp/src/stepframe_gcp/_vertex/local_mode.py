"""Local mode (``machine_type = "local"``): the CustomJob's own container spec, run on the
user's Docker engine through stepframe-docker's `CloudLocalMode`.

The body is built exactly as for Vertex AI (`custom_job_body`), then its chief's container
spec -- image by digest, command, environment -- is what runs, with the ``CLUSTER_SPEC``
Vertex AI would give a one-replica job.  Submit, poll (the container's log with a byte
cursor), cancel and find are the docker operator's; the handle stays a ``vertex`` handle
that carries the docker one, so ``stepframe jobs`` and resumed runs find it like any
vertex job.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from stepframe import Component, JobHandle, JobNotFound, JobStatus, Launch
from stepframe_gcp._vertex.config import FLAVOR, VertexOperatorConfig, VertexSettings
from stepframe_gcp._vertex.request import custom_job_body

if TYPE_CHECKING:
    from stepframe_docker import CloudLocalMode

__all__ = ["LOCAL_MACHINE", "cancel", "find", "is_local", "poll", "submit"]

LOCAL_MACHINE = "local"
_CLUSTER_SPEC = json.dumps(
    {
        "cluster": {"workerpool0": ["localhost:2222"]},
        "environment": "cloud",
        "task": {"type": "workerpool0", "index": 0},
    }
)


def _mode() -> CloudLocalMode:
    from stepframe_docker import CloudLocalMode

    return CloudLocalMode(FLAVOR)


def is_local(handle: JobHandle) -> bool:
    return bool(handle.data.get("local"))


def _container_spec(
    launch: Launch, settings: VertexSettings, config: VertexOperatorConfig
) -> tuple[list[str], dict[str, str]]:
    body = custom_job_body(launch, settings, config)
    container = body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
    environment = {item["name"]: item["value"] for item in container["env"]}
    environment["CLUSTER_SPEC"] = _CLUSTER_SPEC
    return list(container["command"]), environment


def submit(
    launch: Launch, operator: Component, settings: VertexSettings, config: VertexOperatorConfig
) -> JobHandle:
    command, environment = _container_spec(launch, settings, config)
    return _mode().submit(launch, operator, command, environment)


def poll(handle: JobHandle, cursor: str | None) -> JobStatus:
    return _mode().poll(handle, cursor)


def cancel(handle: JobHandle) -> bool:
    return _mode().cancel(handle)


def find(
    launch: Launch, operator: Component, settings: VertexSettings, config: VertexOperatorConfig
) -> JobHandle | JobNotFound | None:
    command, environment = _container_spec(launch, settings, config)
    return _mode().find(launch, operator, command, environment)
