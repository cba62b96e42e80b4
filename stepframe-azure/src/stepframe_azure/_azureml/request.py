"""The REST bodies a step attempt is submitted with (camelCase dicts, as the wire takes them).

Two resources per attempt, both created by name with PUT, so sending one again is
harmless:

- an environment version holding the step's image by digest (AzureML runs a command job
  in an environment, never in a bare image): name `ENVIRONMENT_NAME`, version a digest of
  the image reference, so one image is one version whichever step or run uses it;
- the command job, named by `job_name` from the launch's job name (unique per run, step
  and attempt): it runs ``launch.command`` in that environment with the launch's
  environment variables (the manifest URI among them).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping
from typing import Any

from stepframe import ConfigError, ImageRef, Launch
from stepframe_azure._azureml.config import AzureMLOperatorConfig, AzureMLSettings

__all__ = [
    "DEFAULT_INSTANCE_TYPE",
    "DEFAULT_MULTI_NODE_DISTRIBUTION",
    "ENVIRONMENT_NAME",
    "MAX_NAME",
    "build_environment_body",
    "build_job_body",
    "compute_id",
    "distribution_of",
    "environment_version",
    "image_by_digest",
    "job_name",
    "settings_of",
]

#: The name of the environment whose versions hold the steps' images.
ENVIRONMENT_NAME = "stepframe-step-image"
#: AzureML's job and environment names: ``^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$``.
MAX_NAME = 255
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")
_NAME_CHARACTER = re.compile(r"[^a-zA-Z0-9_-]")
#: The VM size of a serverless job when neither the step nor the operator names one.
DEFAULT_INSTANCE_TYPE = "Standard_DS3_v2"
#: Tags stepframe puts on every job: ``find_job`` checks them before adopting a job.
RUN_TAG, STEP_TAG, ATTEMPT_TAG = "stepframe-run", "stepframe-step", "stepframe-attempt"


def job_name(launch_job_name: str) -> str:
    """The AzureML job name of a launch: its job name when it fits AzureML's rules, else
    its start and a digest of the whole (so names that differ only at the end stay
    distinct), always the same for the same launch."""
    if _NAME.match(launch_job_name):
        return launch_job_name
    cleaned = _NAME_CHARACTER.sub("-", launch_job_name).lstrip("-_") or "job"
    digest = hashlib.sha256(launch_job_name.encode()).hexdigest()[:12]
    return f"{cleaned[: MAX_NAME - len(digest) - 1]}-{digest}"


def settings_of(launch: Launch) -> AzureMLSettings:
    """The launch's `AzureMLSettings` (the core passes an instance; a mapping is
    structured)."""
    settings = launch.settings
    if isinstance(settings, AzureMLSettings):
        return settings
    if settings is None:
        return AzureMLSettings()
    if isinstance(settings, Mapping):
        try:
            return AzureMLSettings(**dict(settings))
        except TypeError as error:
            raise ConfigError(f"step {launch.step!r} settings.azureml: {error}") from None
    raise ConfigError(
        f"step {launch.step!r}: the azureml operator got settings of type "
        f"{type(settings).__name__}, not AzureMLSettings"
    )


def image_by_digest(image: ImageRef | None) -> str:
    """``REPOSITORY@sha256:...`` when the builder gave a digest, else the URI as given."""
    if image is None:
        return ""
    uri, digest = image.uri, image.digest
    if digest and "@" not in uri:
        repository = uri.rsplit(":", 1)[0] if uri.rfind(":") > uri.rfind("/") else uri
        return f"{repository}@{digest}"
    return uri


def environment_version(image: str) -> str:
    """The environment version holding ``image``: 32 hex digits of its reference."""
    return hashlib.sha256(image.encode()).hexdigest()[:32]


def build_environment_body(image: str) -> dict[str, Any]:
    """The EnvironmentVersion body (PUT .../environments/NAME/versions/VERSION)."""
    return {
        "properties": {
            "image": image,
            "osType": "Linux",
            "isAnonymous": True,
            "description": "A stepframe step image, by digest",
        }
    }


def compute_id(config: AzureMLOperatorConfig, name: str) -> str:
    """A workspace compute's Azure resource id (a name already given as an id stays)."""
    if name.startswith("/subscriptions/"):
        return name
    return f"{config.workspace_id}/computes/{name}"


def build_job_body(
    launch: Launch,
    operator_config: AzureMLOperatorConfig,
    settings: AzureMLSettings,
    name: str,
) -> dict[str, Any]:
    """The JobBase body of ``launch``'s command job (PUT .../jobs/NAME).

    :param launch: the step attempt: its command, environment and image.
    :param operator_config: the operator's workspace and defaults.
    :param settings: the step's settings (the core's resolution of component, pipeline and
        step settings).
    :param name: the job's name (`job_name`); the display name defaults to the step's.
    """
    config = operator_config
    image = image_by_digest(launch.image)
    environment_id = (
        f"{config.workspace_id}/environments/{ENVIRONMENT_NAME}"
        f"/versions/{environment_version(image)}"
    )
    resources: dict[str, Any] = {"instanceCount": settings.instance_count}
    properties: dict[str, Any] = {
        **settings.extra_job,
        "jobType": "Command",
        "command": shlex.join(launch.command),
        "environmentId": environment_id,
        "environmentVariables": {**settings.environment, **launch.environment},
        "experimentName": settings.experiment_name or _experiment(launch.pipeline),
        "displayName": settings.display_name or launch.step,
        "tags": {
            **settings.tags,
            RUN_TAG: launch.run_id,
            STEP_TAG: launch.step,
            ATTEMPT_TAG: str(launch.attempt),
        },
    }
    if settings.mode == "serverless":
        resources["instanceType"] = (
            settings.instance_type or config.instance_type or DEFAULT_INSTANCE_TYPE
        )
    else:
        compute = settings.compute_name or config.compute_name or ""
        properties["computeId"] = compute_id(config, compute)
        if settings.instance_type:
            resources["instanceType"] = settings.instance_type
    if settings.shm_size:
        resources["shmSize"] = settings.shm_size
    properties["resources"] = resources
    distribution = distribution_of(settings)
    if distribution is not None:
        properties["distribution"] = distribution
    if settings.timeout is not None:
        properties["limits"] = {"jobLimitsType": "Command", "timeout": f"PT{settings.timeout}S"}
    if settings.job_tier is not None:
        properties["queueSettings"] = {"jobTier": settings.job_tier}
    if settings.identity is not None:
        properties["identity"] = _identity(settings.identity)
    return {"properties": properties}


def _experiment(pipeline: str) -> str:
    """Experiment names: letters, digits, ``-`` and ``_`` (AzureML's rule), up to 255."""
    return (_NAME_CHARACTER.sub("-", pipeline).strip("-") or "stepframe")[:MAX_NAME]


# Without a distribution AzureML starts the command once per node but tells no node its
# index in a variable stepframe.current_job() reads, so every node of a multi-node job
# would stop at start.  Its PyTorch distribution does: "Azure Machine Learning sets the
# MASTER_ADDR, MASTER_PORT, WORLD_SIZE, and NODE_RANK environment variables on each node,
# and sets the process-level RANK and LOCAL_RANK" (Microsoft Learn, "Distributed GPU
# training guide (SDK v2)", PyTorch section:
# https://learn.microsoft.com/azure/machine-learning/how-to-train-distributed-gpu; the
# same list in https://bea.stollnitz.com/blog/pytorch-distributed/).  With one process per
# instance, a node's NODE_RANK is its RANK, and the step runs once per node as without.
DEFAULT_MULTI_NODE_DISTRIBUTION: dict[str, Any] = {
    "distributionType": "PyTorch",
    "processCountPerInstance": 1,
}


def distribution_of(settings: AzureMLSettings) -> dict[str, Any] | None:
    """The job's DistributionConfiguration: the settings' distribution; else, for more
    than one node, `DEFAULT_MULTI_NODE_DISTRIBUTION` (so each node learns its rank);
    else none (one node needs no rank)."""
    if settings.distribution is not None:
        distribution: dict[str, Any] = {"distributionType": _distribution(settings.distribution)}
        if settings.process_count_per_instance is not None:
            distribution["processCountPerInstance"] = settings.process_count_per_instance
        return distribution
    if settings.instance_count > 1:
        return dict(DEFAULT_MULTI_NODE_DISTRIBUTION)
    return None


def _distribution(word: str) -> str:
    return {"pytorch": "PyTorch"}.get(word.lower(), word)


def _identity(word: str) -> dict[str, Any]:
    """``user``, ``managed`` or ``managed:CLIENT_ID`` as an IdentityConfiguration."""
    kind, _, client = word.partition(":")
    if kind == "user":
        return {"identityType": "UserIdentity"}
    if kind == "managed":
        identity: dict[str, Any] = {"identityType": "Managed"}
        if client.startswith("/subscriptions/"):
            identity["resourceId"] = client
        elif client:
            identity["clientId"] = client
        return identity
    return {"identityType": word}  # refused by the pre-flight with the words it takes
