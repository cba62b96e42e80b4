"""The CustomJob body a step attempt is submitted as (camelCase, as the wire wants it).

One worker pool runs the chief (replica 0); with ``replica_count`` > 1 a second pool of
the same spec runs the other replicas.  Every replica runs ``launch.command`` in the step's
image, by digest, with the launch's environment: Vertex AI adds ``CLUSTER_SPEC``, from
which a replica reads its rank.

The job's id is server-assigned, so every body carries the label ``stepframe_launch``, a
digest of the launch's job name (unique per run, step and attempt): ``find_job`` finds a
job whose create answer was lost by that label.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from stepframe import Launch
from stepframe_gcp._vertex.config import SCHEDULING_STRATEGIES, VertexOperatorConfig, VertexSettings

__all__ = [
    "LAUNCH_LABEL",
    "MAX_DISPLAY_NAME",
    "STEP_LABEL",
    "custom_job_body",
    "display_name",
    "image_uri",
    "launch_label",
    "settings_of",
]

# Keys of stepframe's own labels.  An underscore, not a hyphen: find_job names the key in a
# list filter (``labels.KEY="VALUE"``), whose grammar (AIP-160) reads a hyphen as an
# operator.
LAUNCH_LABEL = "stepframe_launch"
STEP_LABEL = "stepframe_step"
MAX_DISPLAY_NAME = 128
_LABEL_VALUE = re.compile(r"[^a-z0-9_-]")


def launch_label(launch: Launch) -> str:
    """The ``stepframe_launch`` label value of a launch: 40 hex digits of its job name."""
    return hashlib.sha256(launch.job_name.encode()).hexdigest()[:40]


def settings_of(launch: Launch, config: VertexOperatorConfig) -> VertexSettings:
    settings = launch.settings
    if isinstance(settings, VertexSettings):
        return settings
    if settings is None:
        return VertexSettings(machine_type=config.machine_type)
    return VertexSettings(**dict(settings))


def image_uri(launch: Launch) -> str:
    """The image to run, by digest when the builder gave one."""
    if launch.image is None:
        return ""
    uri = launch.image.uri
    digest = launch.image.digest
    if digest and "@" not in uri:
        repository = uri.rsplit(":", 1)[0] if uri.rfind(":") > uri.rfind("/") else uri
        return f"{repository}@{digest}"
    return uri


def custom_job_body(
    launch: Launch, settings: VertexSettings, config: VertexOperatorConfig
) -> dict[str, Any]:
    """The request body of ``customJobs.create`` for ``launch``."""
    environment = {**settings.environment, **launch.environment}
    container = {
        "imageUri": image_uri(launch),
        "command": list(launch.command),
        "env": [{"name": name, "value": value} for name, value in sorted(environment.items())],
    }
    machine: dict[str, Any] = {"machineType": settings.machine_type}
    if settings.accelerator_type:
        machine["acceleratorType"] = settings.accelerator_type
        machine["acceleratorCount"] = settings.accelerator_count
    pool: dict[str, Any] = {
        "machineSpec": machine,
        "replicaCount": "1",
        "containerSpec": container,
        "diskSpec": {
            "bootDiskType": settings.boot_disk_type,
            "bootDiskSizeGb": settings.boot_disk_size_gb,
        },
    }
    pools = [pool]
    if settings.replica_count > 1:
        pools.append({**pool, "replicaCount": str(settings.replica_count - 1)})
    spec: dict[str, Any] = {**settings.extra_job_spec, "workerPoolSpecs": pools}
    scheduling: dict[str, Any] = {
        "strategy": SCHEDULING_STRATEGIES.get(
            settings.scheduling_strategy, settings.scheduling_strategy
        )
    }
    if settings.timeout is not None:
        scheduling["timeout"] = f"{settings.timeout}s"
    if settings.max_wait is not None:
        scheduling["maxWaitDuration"] = f"{settings.max_wait}s"
    if settings.restart_job_on_worker_restart:
        scheduling["restartJobOnWorkerRestart"] = True
    spec["scheduling"] = scheduling
    service_account = settings.service_account or config.service_account
    if service_account:
        spec["serviceAccount"] = service_account
    if settings.network:
        spec["network"] = settings.network
    if settings.reserved_ip_ranges:
        spec["reservedIpRanges"] = list(settings.reserved_ip_ranges)
    if settings.persistent_resource_id:
        spec["persistentResourceId"] = settings.persistent_resource_id
    if settings.enable_web_access:
        spec["enableWebAccess"] = True
    body: dict[str, Any] = {
        "displayName": display_name(launch.job_name),
        "jobSpec": spec,
        "labels": {
            **settings.labels,
            LAUNCH_LABEL: launch_label(launch),
            STEP_LABEL: _label_value(launch.step),
        },
    }
    if settings.encryption_key:
        body["encryptionSpec"] = {"kmsKeyName": settings.encryption_key}
    return body


def display_name(job_name: str) -> str:
    """``job_name`` within Vertex AI's 128 characters; a longer one keeps its start and a
    digest of the whole, so names that differ only at the end stay distinct."""
    if len(job_name) <= MAX_DISPLAY_NAME:
        return job_name
    digest = hashlib.sha256(job_name.encode()).hexdigest()[:12]
    return f"{job_name[: MAX_DISPLAY_NAME - len(digest) - 1]}-{digest}"


def _label_value(text: str) -> str:
    return _LABEL_VALUE.sub("-", text.lower())[:63]
